// Progressive enhancement only: every page works without it. Loaded as a module from /static
// (the content security policy allows no inline script).
import { initAll } from "./govuk-frontend.min.js";

document.body.classList.add("govuk-frontend-supported");
initAll();
