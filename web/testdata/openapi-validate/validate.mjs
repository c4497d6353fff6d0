// Validates an OpenAPI document with @apidevtools/swagger-parser, an
// implementation independent of the kin-openapi the Go tests use: the
// document must satisfy the OpenAPI 3.0 schema as other tools read it.
// Usage: node validate.mjs FILE; exit 0 and "valid" when it is.
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid: ${api.info.title} ${api.info.version} (openapi ${api.openapi})`);
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
