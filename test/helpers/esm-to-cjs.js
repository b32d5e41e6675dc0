/**
 * Jest transform for the few ESM-only packages in the dependency tree (e.g.
 * cookie).
 * Node 20.19+ require()s them natively, so the processes need nothing; Jest's
 * module runtime cannot before Node 24.9, so tests get them as CommonJS.
 */
const ts = require('typescript');

module.exports = {
  process(source, filename) {
    const out = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        allowJs: true,
        esModuleInterop: true,
      },
    });
    return { code: out.outputText };
  },
};
