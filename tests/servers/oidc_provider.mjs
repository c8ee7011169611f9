// A real OpenID Connect provider on loopback for the console's sign-in tests: npm's certified
// `oidc-provider`, run with Debian's nodejs. Its development sign-in page takes any login;
// the login names an account of the users file, whose email and groups become claims.
//
// node oidc_provider.mjs NODE_MODULES_DIR CONFIG.json
// CONFIG: {"port", "client_id", "client_secret", "redirect_uri", "users": {login: {email, groups}}}
// Prints "ready PORT" once it listens.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, configFile] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configFile, "utf8"));
const { default: Provider } = await import(
  pathToFileURL(join(modules, "oidc-provider", "lib", "index.js")).href
);

const issuer = `http://127.0.0.1:${config.port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: [config.redirect_uri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "groups"],
  },
  // The claims in the ID token itself, as Entra ID and Google send email and groups.
  conformIdTokenClaims: false,
  cookies: { keys: ["console-tests-only-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const user = config.users[id];
    return {
      accountId: id,
      async claims() {
        if (!user) return { sub: id };
        return { sub: id, email: user.email, email_verified: true, groups: user.groups ?? [] };
      },
    };
  },
});
provider.listen(config.port, "127.0.0.1", () => {
  console.log(`ready ${config.port}`);
});
