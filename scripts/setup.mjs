// Installs the npm packages when node_modules is missing or older than package-lock.json, so
// that `npm test` and `npm run demo` work on a fresh clone. Debian packages (chromium for the
// SwiftShader Vulkan driver and the browser tests, libvulkan1) are installed by .ci/run or by hand.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const lock = 'package-lock.json';
const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  console.log('Installing npm packages (npm ci)...');
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}
if (!existsSync('/usr/lib/chromium/vk_swiftshader_icd.json') && !process.env.VK_ICD_FILENAMES) {
  console.warn('warning: SwiftShader (Debian package chromium) is not installed; without a GPU driver, WebGPU tests cannot find an adapter. Run: apt-get install chromium libvulkan1');
}
