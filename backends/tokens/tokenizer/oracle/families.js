// families.js resolves ../testdata/families.json entries to tokenizer.json
// paths, the same way the Go tests do.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const modDirs = {};
function modDir(mod) {
  if (!(mod in modDirs)) {
    const out = execFileSync('go', ['mod', 'download', '-json', mod], { encoding: 'utf8' });
    modDirs[mod] = JSON.parse(out).Dir;
  }
  return modDirs[mod];
}

function families() {
  const list = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'testdata', 'families.json'), 'utf8'));
  return list.map((f) => {
    let file;
    if (f.source === 'gomod') file = path.join(modDir(f.module), f.path);
    else if (f.source === 'npm') file = path.join(__dirname, 'node_modules', f.path);
    else file = path.join(__dirname, f.path);
    return { ...f, file };
  });
}

module.exports = { families };
