// Lets ts-jest run the @nestjs/swagger CLI plugin (as `nest build` does), so tests see the
// same OpenAPI metadata as the production build. Options mirror nest-cli.json.
const transformer = require('@nestjs/swagger/plugin');

module.exports.name = 'nestjs-swagger-transformer';
module.exports.version = 1;
module.exports.factory = (cs) =>
  transformer.before(
    { introspectComments: true, classValidatorShim: true, dtoFileNameSuffix: ['.dto.ts'], esmCompatible: true },
    cs.program,
  );
