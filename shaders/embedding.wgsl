// Token and position embedding: out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :].
//
//   tokens: [B*T] (i32)   wte chunk: [rows, C] holding vocabulary rows row_start..row_start+rows-1
//   wpe, dwpe: [P, C]     out, dout: [B*T, C]
//
// The vocabulary matrix may be split into chunks that each fit one storage binding, so the
// forward pass writes the position part first (position_forward) and then adds the rows of each
// chunk (token_forward), one dispatch per chunk.
//
// position_forward, token_forward: one thread per output element, dispatched as
// (min(ceil(B*T*C / 256), 65535), ceil(B*T*C / (256 * 65535)), 1).
// token_backward: the gradient of each distinct token's row is the sum of dout over the positions
// holding that token. The host groups positions by token: `groups` [G] lists (token, first, count)
// triples into `positions`. One workgroup of 64 threads per group, threads over C, dispatched as
// (min(G, 65535), ceil(G / 65535), 1); rows outside the chunk are skipped. Accumulates into dwte.
// position_backward: dwpe[t, c] (+)= sum_b dout[b, t, c]; one thread per (t, c), T*C threads.

struct Params {
  BT: u32, T: u32, C: u32,
  row_start: u32, rows: u32,
  groups: u32,
  flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> groups: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn position_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.BT * p.C) { return; }
  let c = i % p.C;
  let t = (i / p.C) % p.T;
  out[i] = table[t * p.C + c];
}

@compute @workgroup_size(256, 1, 1)
fn token_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.BT * p.C) { return; }
  let c = i % p.C;
  let token = u32(tokens[i / p.C]);
  if (token < p.row_start || token >= p.row_start + p.rows) { return; }
  out[i] = out[i] + table[(token - p.row_start) * p.C + c];
}

@compute @workgroup_size(64, 1, 1)
fn token_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wg.x + wg.y * 65535u;
  if (g >= p.groups) { return; }
  let token = groups[3u * g];
  let first = groups[3u * g + 1u];
  let count = groups[3u * g + 2u];
  if (token < p.row_start || token >= p.row_start + p.rows) { return; }
  let row = (token - p.row_start) * p.C;
  for (var c = lid; c < p.C; c += 64u) {
    var acc = 0.0;
    for (var k = 0u; k < count; k++) { acc += dout[positions[first + k] * p.C + c]; }
    dtable[row + c] = dtable[row + c] + acc;
  }
}

@compute @workgroup_size(256, 1, 1)
fn position_backward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.T * p.C) { return; }
  let B = p.BT / p.T;
  var acc = 0.0;
  for (var b = 0u; b < B; b++) { acc += dout[b * p.T * p.C + i]; }
  if ((p.flags & 2u) != 0u) { acc += dtable[i]; }
  dtable[i] = acc;
}
