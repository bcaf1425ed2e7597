/**
 * bfloat16 as JavaScript holds it: the upper 16 bits of a float32, in a Uint16Array (JavaScript has no bfloat16
 * array). Widening is exact; narrowing rounds to nearest, ties to even, as PyTorch and CUDA's __float2bfloat16_rn
 * do (and as the CUDA kernels' float_to_bf16 in native/src/grpo_math.h does, bit for bit: test/cuda-bfloat16.test.ts).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits → float32 values (exact). */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

/** One value rounded to bfloat16 bits: first to float32, then to nearest even; NaN stays a (quiet) NaN. */
export function toBfloat16Bits(value: number): number {
  f32[0] = value;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) & 0x8000) | 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Values → bfloat16 bits, each rounded once from its float32 value to nearest even. */
export function float32ToBfloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toBfloat16Bits(values[i]!);
  return out;
}

/** Rounds every entry to the nearest bfloat16 value, in place (the precision of a bfloat16 gradient). */
export function roundToBfloat16InPlace(values: Float32Array): Float32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const u = bits[i]!;
    bits[i] =
      (u & 0x7fffffff) > 0x7f800000
        ? (((u >>> 16) & 0x8000) | 0x7fc0) << 16
        : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  }
  return values;
}
