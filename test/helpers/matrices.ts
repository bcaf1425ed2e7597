/** Nested [B][T] golden arrays as flat row-major data with a shape. */
export function matrix(rows: readonly (readonly number[])[]): { data: Float64Array; shape: [number, number] } {
  const cols = rows[0]?.length ?? 0;
  return { data: Float64Array.from(rows.flat()), shape: [rows.length, cols] };
}

/** Values of `values` where the mask is 1, in row-major order. */
export function selected(values: ArrayLike<number>, mask: readonly (readonly number[])[]): number[] {
  const out: number[] = [];
  mask.flat().forEach((m, i) => {
    if (m === 1) out.push(values[i]!);
  });
  return out;
}
