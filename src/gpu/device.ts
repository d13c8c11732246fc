// The GPU device and everything the engine records on it: buffers with a byte account per
// category, pipelines built once per entry point, uniforms, dispatches and read-back.

import { UserError } from '../model/errors.ts';

export type MemoryCategory = 'weights' | 'activations' | 'gradients' | 'optimizer' | 'scratch';

export const MEMORY_CATEGORIES: MemoryCategory[] = ['weights', 'activations', 'gradients', 'optimizer', 'scratch'];

export type MemoryAccount = Record<MemoryCategory, number>;

/** A storage buffer and the category its bytes are counted under. */
export interface GpuBuffer {
  buffer: GPUBuffer;
  bytes: number;
  category: MemoryCategory;
  label: string;
}

/** A binding: a whole buffer, or a range of one in bytes (offset aligned to the device's minimum). */
export type Binding = GpuBuffer | { buffer: GpuBuffer; offset: number; size: number };

const UNIFORM_POOL_BYTES = 64 * 1024;

/** Adapter limits the engine relies on, requested at their adapter maximum. */
const REQUESTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
] as const;

export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
}

/**
 * Requests a device with the adapter's own limits for the values the engine needs (the defaults
 * cap a binding at 128 MiB, smaller than GPT-2's 154 MB token embedding).
 */
export async function requestDevice(gpu: GPU, powerPreference: GPUPowerPreference = 'high-performance'): Promise<Gpu> {
  const adapter = await gpu.requestAdapter({ powerPreference });
  if (!adapter) {
    throw new UserError('No WebGPU adapter found. Check that a GPU driver (Vulkan, Metal or D3D12) is installed and WebGPU is enabled.');
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredLimits });
  const info = adapter.info;
  const description = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
  return new Gpu(device, description);
}

interface UniformPage {
  buffer: GPUBuffer;
  staging: Uint8Array;
  used: number;
}

export class Gpu {
  readonly device: GPUDevice;
  readonly adapterDescription: string;
  readonly limits: DeviceLimits;
  /** Set by tests to exercise the splitting of tensors larger than one binding. */
  maxBindingBytes: number;
  /** Number of dispatches recorded so far (tests use it to see that work was skipped). */
  dispatchCount = 0;

  private pipelines = new Map<string, GPUComputePipeline>();
  private modules = new Map<string, GPUShaderModule>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private uniformPages: UniformPage[] = [];
  private uniformPage = 0;
  private readonly uniformAlignment: number;
  private account: MemoryAccount = { weights: 0, activations: 0, gradients: 0, optimizer: 0, scratch: 0 };
  private peakTotal = 0;
  private lost: string | null = null;

  constructor(device: GPUDevice, adapterDescription: string) {
    this.device = device;
    this.adapterDescription = adapterDescription;
    this.limits = {
      maxBufferSize: device.limits.maxBufferSize,
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
    };
    this.maxBindingBytes = Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
    this.uniformAlignment = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
    device.lost.then((info) => {
      this.lost = info.message || info.reason;
    });
  }

  /** The reason the device was lost, or null while it works. */
  get lostReason(): string | null {
    return this.lost;
  }

  createBuffer(label: string, bytes: number, category: MemoryCategory, extraUsage = 0): GpuBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    // Every storage buffer is bound whole, except tensors split into row chunks before they get here.
    if (size > this.limits.maxStorageBufferBindingSize) {
      throw new UserError(
        `${label} needs a ${formatBytes(size)} GPU buffer, more than this device's maxStorageBufferBindingSize of ${formatBytes(this.limits.maxStorageBufferBindingSize)}. Use a smaller batch size or sequence length.`,
      );
    }
    if (size > this.limits.maxBufferSize) {
      throw new UserError(
        `${label} needs a ${formatBytes(size)} GPU buffer, more than this device's maxBufferSize of ${formatBytes(this.limits.maxBufferSize)}. Use a smaller batch size or sequence length.`,
      );
    }
    const buffer = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
    });
    this.account[category] += size;
    this.peakTotal = Math.max(this.peakTotal, this.totalBytes());
    return { buffer, bytes: size, category, label };
  }

  destroyBuffer(buffer: GpuBuffer): void {
    // Commands recorded but not yet submitted may use the buffer. A buffer destroyed before the
    // submit fails the whole command buffer, but one destroyed after it stays valid for it.
    this.flush();
    this.account[buffer.category] -= buffer.bytes;
    buffer.buffer.destroy();
  }

  /** Bytes currently allocated, by category. */
  memory(): MemoryAccount {
    return { ...this.account };
  }

  totalBytes(): number {
    return MEMORY_CATEGORIES.reduce((sum, category) => sum + this.account[category], 0);
  }

  get peakBytes(): number {
    return this.peakTotal;
  }

  resetPeak(): void {
    this.peakTotal = this.totalBytes();
  }

  write(target: GpuBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.flush();
    this.device.queue.writeBuffer(target.buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * Compiles pipelines ahead of use and rejects with the compiler's message when a shader is
   * invalid (Dawn may crash on a dispatch of an invalid pipeline instead of reporting it).
   */
  async compile(entries: Array<{ shaderName: string; source: string; entryPoint: string }>): Promise<void> {
    await Promise.all(entries.map(async ({ shaderName, source, entryPoint }) => {
      const key = `${shaderName}:${entryPoint}`;
      if (this.pipelines.has(key)) return;
      let module = this.modules.get(shaderName);
      if (!module) {
        module = this.device.createShaderModule({ label: shaderName, code: source });
        this.modules.set(shaderName, module);
      }
      const pipeline = await this.device.createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint } });
      this.pipelines.set(key, pipeline);
    }));
  }

  /** Builds (once) the pipeline of one entry point of a WGSL source. */
  pipeline(shaderName: string, source: string, entryPoint: string): GPUComputePipeline {
    const key = `${shaderName}:${entryPoint}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      let module = this.modules.get(shaderName);
      if (!module) {
        module = this.device.createShaderModule({ label: shaderName, code: source });
        this.modules.set(shaderName, module);
      }
      pipeline = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint } });
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * Records one dispatch. `bindings` maps binding numbers 1.. to buffers; binding 0 is the
   * uniform block built from `uniforms`. Dispatches run in recording order when flushed.
   */
  dispatch(pipeline: GPUComputePipeline, uniforms: ArrayBuffer, bindings: Record<number, Binding>, workgroups: [number, number, number]): void {
    if (this.lost) throw new UserError(`The GPU device was lost (${this.lost}). Reload the model to continue.`);
    const uniform = this.allocateUniform(uniforms);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: uniform }];
    for (const [binding, value] of Object.entries(bindings)) {
      const resource = 'offset' in value
        ? { buffer: value.buffer.buffer, offset: value.offset, size: value.size }
        : { buffer: value.buffer };
      entries.push({ binding: Number(binding), resource });
    }
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (!this.pass) {
      // A copy or clear recorded since the last pass ended is in the current encoder; keep it.
      if (!this.encoder) this.encoder = this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    this.dispatchCount++;
  }

  /** Records a buffer-to-buffer copy after the dispatches recorded so far. */
  copy(source: GpuBuffer, sourceOffset: number, target: GpuBuffer, targetOffset: number, bytes: number): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(source.buffer, sourceOffset, target.buffer, targetOffset, bytes);
  }

  /** Records a fill of a buffer range with zeros. */
  clear(target: GpuBuffer, offset = 0, bytes = target.bytes): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.clearBuffer(target.buffer, offset, bytes);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    // Uniform pages are written on the queue before the commands that read them; commands
    // submitted earlier have read their values already, because the queue runs in order.
    for (const page of this.uniformPages) {
      if (page.used > 0) this.device.queue.writeBuffer(page.buffer, 0, page.staging.buffer, 0, page.used);
      page.used = 0;
    }
    this.uniformPage = 0;
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
  }

  /** Waits for all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    if (this.lost) throw new UserError(`The GPU device was lost (${this.lost}). Reload the model to continue.`);
  }

  /** Copies a range of a buffer back to the CPU after all recorded work. */
  async read(source: GpuBuffer, byteOffset = 0, bytes = source.bytes - byteOffset): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(source, byteOffset, { buffer: staging, bytes, category: 'scratch', label: 'read-back' }, 0, Math.ceil(bytes / 4) * 4);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const result = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return result;
  }

  async readFloat32(source: GpuBuffer, offsetElements = 0, count = source.bytes / 4 - offsetElements): Promise<Float32Array> {
    return new Float32Array(await this.read(source, offsetElements * 4, count * 4));
  }

  destroy(): void {
    this.device.destroy();
  }

  private allocateUniform(data: ArrayBuffer): GPUBufferBinding {
    const size = Math.ceil(data.byteLength / 16) * 16;
    let page = this.uniformPages[this.uniformPage];
    if (page && page.used + size > UNIFORM_POOL_BYTES) {
      this.uniformPage++;
      page = this.uniformPages[this.uniformPage];
    }
    if (!page) {
      page = {
        buffer: this.device.createBuffer({ label: 'uniforms', size: UNIFORM_POOL_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
        staging: new Uint8Array(UNIFORM_POOL_BYTES),
        used: 0,
      };
      this.uniformPages.push(page);
    }
    const offset = page.used;
    page.staging.set(new Uint8Array(data), offset);
    page.used = Math.ceil((offset + size) / this.uniformAlignment) * this.uniformAlignment;
    return { buffer: page.buffer, offset, size };
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
