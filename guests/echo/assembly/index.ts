// Bytes in, the same bytes out: the call data ABI's round trip (bench/data_abi.py).

import { input, output } from "ngixi-data";

export function echo(): void {
  output.bytes(input.bytes());
}
