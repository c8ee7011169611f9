#!/usr/bin/env bash
# Builds the console's vendored assets from npm's govuk-frontend into router/console/static/.
# Run after changing console.scss or upgrading govuk-frontend: `npm ci && ./build.sh`.
set -euo pipefail
cd "$(dirname "$0")"
out=../../router/console/static
mkdir -p "$out"
npx sass --quiet-deps --silence-deprecation=import --no-source-map --style=compressed --pkg-importer=node console.scss "$out/console.css"
cp node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js "$out/govuk-frontend.min.js"
cp node_modules/govuk-frontend/dist/govuk/assets/images/favicon.ico "$out/favicon.ico"
