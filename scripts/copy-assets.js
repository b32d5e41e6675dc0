// Copies the non-TypeScript files that src/ loads at run time (Lua scripts) into dist/.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
function copyDir(rel, ext) {
  const from = path.join(root, 'src', rel);
  const to = path.join(root, 'dist', rel);
  if (!fs.existsSync(from)) return;
  fs.mkdirSync(to, { recursive: true });
  for (const f of fs.readdirSync(from))
    if (f.endsWith(ext)) fs.copyFileSync(path.join(from, f), path.join(to, f));
}
copyDir('queue/lua', '.lua');
