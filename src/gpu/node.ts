// WebGPU under Node through Dawn (the `webgpu` package). Without a system Vulkan driver the
// Vulkan loader is pointed at SwiftShader, which Debian's chromium package ships.

import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestDevice, type Gpu } from './device.ts';
import { UserError } from '../model/errors.ts';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

// Mesa installs Vulkan drivers for Intel and AMD even where no such GPU exists, so the presence
// of a GPU device node, not of a driver file, decides. IREPAIR_VULKAN=system or swiftshader overrides it.
function hasGpuDevice(): boolean {
  if (existsSync('/dev/nvidia0')) return true;
  return existsSync('/dev/dri') && readdirSync('/dev/dri').some((name) => name.startsWith('renderD'));
}

// Dawn's instance must outlive every device made from it: when the GPU object is garbage
// collected, Dawn tears the instance down under running devices and the process crashes.
const instances: GPU[] = [];

/** Opens a Dawn device: the system's Vulkan driver if one is installed, else SwiftShader. */
export async function createNodeGpu(): Promise<Gpu> {
  const choice = process.env.IREPAIR_VULKAN;
  const useSwiftShader = choice === 'swiftshader' || (choice !== 'system' && !process.env.VK_ICD_FILENAMES && !hasGpuDevice());
  if (useSwiftShader && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  // The Vulkan loader prints an error line when XDG_RUNTIME_DIR is unset, as it is under CI and
  // sudo; a private temporary folder silences it.
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'irepair-runtime-'));
  }
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const navigatorGpu = create([]);
  instances.push(navigatorGpu);
  try {
    return await requestDevice(navigatorGpu);
  } catch (error) {
    if (error instanceof UserError) {
      throw new UserError(`${error.message} Without a GPU, install Debian's chromium and libvulkan1 packages for the SwiftShader software adapter.`);
    }
    throw error;
  }
}
