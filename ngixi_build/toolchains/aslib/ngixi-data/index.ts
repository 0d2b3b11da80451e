// ngixi-data: a call's input and output through the call data ABI (docs/host-abi.md, "Call data"),
// shipped by ngixi-build and resolved by the compile stage for every core AssemblyScript guest.
//
//   import { input, output, Json } from "ngixi-data";
//   export function shout(): void { output.text(input.text().toUpperCase()); }
//
// The manifest declares what an export takes and gives: `input = "text"`, `output = "json"`.

@external("ngixi", "input_read")
declare function inputRead(buffer: usize, bufferLength: u32, inputLength: usize): i32;

@external("ngixi", "output_write")
declare function outputWrite(pointer: usize, length: u32): i32;

const LENGTH: usize = memory.data(4);

export namespace input {
  /** The call's input as bytes. */
  export function bytes(): Uint8Array {
    inputRead(0, 0, LENGTH); // BUFFER_TOO_SMALL, with the length written
    const length = load<u32>(LENGTH);
    const data = new Uint8Array(length);
    if (length > 0) inputRead(data.dataStart, length, LENGTH);
    return data;
  }

  /** The call's input as text (the host checked it is UTF-8). */
  export function text(): string {
    const data = bytes();
    return String.UTF8.decodeUnsafe(data.dataStart, data.length);
  }

  /** The call's input as a JSON value (the host checked it is one JSON document). */
  export function json(): Json {
    return Json.parse(text());
  }
}

export namespace output {
  /** Appends bytes to the call's output. */
  export function bytes(data: Uint8Array): void {
    outputWrite(data.dataStart, data.length);
  }

  /** Appends text, as UTF-8, to the call's output. */
  export function text(value: string): void {
    const data = String.UTF8.encode(value);
    outputWrite(changetype<usize>(data), data.byteLength);
  }

  /** Writes a JSON value as the call's output, in pieces as it goes: never its whole text at once. */
  export function json(value: Json): void {
    const sink = new TextSink(true);
    write(value, sink);
    sink.flush();
  }
}

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/** A JSON value: `kind` says which of its fields holds it. Objects keep their keys in order. */
export class Json {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  number: f64 = 0;
  string: string = "";
  // Made when first asked for: a document's numbers and strings, most of its values, need none of them.
  private _items: Json[] | null = null;
  private _keys: string[] | null = null;
  private _values: Json[] | null = null;

  /** An array's values. */
  get items(): Json[] {
    let items = this._items;
    if (items == null) this._items = items = [];
    return items;
  }

  /** An object's keys, in order; `values` holds the value of each. */
  get keys(): string[] {
    let keys = this._keys;
    if (keys == null) this._keys = keys = [];
    return keys;
  }

  /** An object's values, in the order of its keys. */
  get values(): Json[] {
    let values = this._values;
    if (values == null) this._values = values = [];
    return values;
  }

  static null(): Json {
    return new Json();
  }

  static fromBool(value: bool): Json {
    const json = new Json();
    json.kind = JsonKind.Bool;
    json.bool = value;
    return json;
  }

  static fromNumber(value: f64): Json {
    const json = new Json();
    json.kind = JsonKind.Number;
    json.number = value;
    return json;
  }

  static fromString(value: string): Json {
    const json = new Json();
    json.kind = JsonKind.String;
    json.string = value;
    return json;
  }

  static array(): Json {
    const json = new Json();
    json.kind = JsonKind.Array;
    return json;
  }

  static object(): Json {
    const json = new Json();
    json.kind = JsonKind.Object;
    return json;
  }

  /** The value under `key` of an object, or null. */
  get(key: string): Json | null {
    const index = this.keys.indexOf(key);
    return index < 0 ? null : this.values[index];
  }

  /** Sets `key` of an object; returns the object, to chain. */
  set(key: string, value: Json): Json {
    const index = this.keys.indexOf(key);
    if (index < 0) {
      this.keys.push(key);
      this.values.push(value);
    } else {
      this.values[index] = value;
    }
    return this;
  }

  /** Appends to an array; returns the array, to chain. */
  push(value: Json): Json {
    this.items.push(value);
    return this;
  }

  toString(): string {
    const sink = new TextSink(false);
    write(this, sink);
    return sink.parts.join("");
  }

  static parse(text: string): Json {
    const parser = new Parser(text);
    const value = parser.value();
    parser.space();
    if (parser.at < text.length) throw new Error("JSON: unexpected text after the value");
    return value;
  }
}

// How many UTF-16 units of a value's text `output.json` gathers before it writes them.
const OUTPUT_PIECE = 16384;

/** Where `write` puts a value's text: its pieces, kept (for `toString`) or written to the output as they gather. */
class TextSink {
  parts: string[] = [];
  gathered: i32 = 0;

  constructor(public streaming: bool) {}

  push(piece: string): void {
    this.parts.push(piece);
    this.gathered += piece.length;
    if (this.streaming && this.gathered >= OUTPUT_PIECE) this.flush();
  }

  flush(): void {
    output.text(this.parts.join(""));
    this.parts = [];
    this.gathered = 0;
  }
}

function write(value: Json, sink: TextSink): void {
  switch (value.kind) {
    case JsonKind.Null:
      sink.push("null");
      break;
    case JsonKind.Bool:
      sink.push(value.bool ? "true" : "false");
      break;
    case JsonKind.Number:
      sink.push(numberText(value.number));
      break;
    case JsonKind.String:
      quote(value.string, sink);
      break;
    case JsonKind.Array:
      sink.push("[");
      for (let i = 0; i < value.items.length; i++) {
        if (i > 0) sink.push(",");
        write(value.items[i], sink);
      }
      sink.push("]");
      break;
    default:
      sink.push("{");
      for (let i = 0; i < value.keys.length; i++) {
        if (i > 0) sink.push(",");
        quote(value.keys[i], sink);
        sink.push(":");
        write(value.values[i], sink);
      }
      sink.push("}");
  }
}

function numberText(value: f64): string {
  if (!isFinite(value)) return "null"; // JSON has no NaN or Infinity
  if (value == 0 && 1 / value < 0) return "-0.0"; // as Python writes it; "-0" reads back as the integer 0
  if (value == Math.floor(value) && Math.abs(value) < 9007199254740992) return (<i64>value).toString();
  return value.toString();
}

const HEX = "0123456789abcdef";

function quote(text: string, sink: TextSink): void {
  sink.push('"');
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code != 0x22 && code != 0x5c && (code & 0xf800) != 0xd800) continue;
    if ((code & 0xfc00) == 0xd800 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) == 0xdc00) {
      i++; // a surrogate pair: one character, written as it is
      continue;
    }
    sink.push(text.substring(start, i));
    if (code == 0x22) sink.push('\\"');
    else if (code == 0x5c) sink.push("\\\\");
    else if (code == 0x0a) sink.push("\\n");
    else if (code == 0x0d) sink.push("\\r");
    else if (code == 0x09) sink.push("\\t");
    else sink.push("\\u" + hex4(code)); // a control character, or a lone surrogate, which UTF-8 cannot hold
    start = i + 1;
  }
  sink.push(text.substring(start));
  sink.push('"');
}

function hex4(code: i32): string {
  return HEX.charAt((code >> 12) & 15) + HEX.charAt((code >> 8) & 15) + HEX.charAt((code >> 4) & 15) + HEX.charAt(code & 15);
}

// How many keys an object being read has before its keys are looked up in a map rather than searched.
const INDEXED_KEYS = 16;

function placesOf(keys: string[]): Map<string, i32> {
  const places = new Map<string, i32>();
  for (let i = 0; i < keys.length; i++) places.set(keys[i], i);
  return places;
}

class Parser {
  at: i32 = 0;

  constructor(public text: string) {}

  space(): void {
    while (this.at < this.text.length) {
      const code = this.text.charCodeAt(this.at);
      if (code != 0x20 && code != 0x09 && code != 0x0a && code != 0x0d) return;
      this.at++;
    }
  }

  expect(word: string): void {
    if (this.text.substring(this.at, this.at + word.length) != word) throw new Error("JSON: expected " + word);
    this.at += word.length;
  }

  value(): Json {
    this.space();
    const code = this.text.charCodeAt(this.at);
    if (code == 0x7b) return this.object();
    if (code == 0x5b) return this.array();
    if (code == 0x22) return Json.fromString(this.string());
    if (code == 0x74) {
      this.expect("true");
      return Json.fromBool(true);
    }
    if (code == 0x66) {
      this.expect("false");
      return Json.fromBool(false);
    }
    if (code == 0x6e) {
      this.expect("null");
      return Json.null();
    }
    return this.number();
  }

  object(): Json {
    const object = Json.object();
    this.at++; // {
    this.space();
    if (this.text.charCodeAt(this.at) == 0x7d) {
      this.at++;
      return object;
    }
    const keys = object.keys;
    const values = object.values;
    // Each key's place once there are many: searching the keys for each would take time quadratic in them.
    let places: Map<string, i32> | null = null;
    while (true) {
      this.space();
      const key = this.string();
      this.space();
      this.expect(":");
      const value = this.value();
      if (places == null && keys.length >= INDEXED_KEYS) places = placesOf(keys);
      const place = places == null ? keys.indexOf(key) : places.has(key) ? places.get(key) : -1;
      if (place >= 0) {
        values[place] = value; // a key given twice: its last value, as `set` and Python's json keep
      } else {
        if (places != null) places.set(key, keys.length);
        keys.push(key);
        values.push(value);
      }
      this.space();
      if (this.text.charCodeAt(this.at) == 0x2c) {
        this.at++;
        continue;
      }
      this.expect("}");
      return object;
    }
  }

  array(): Json {
    const array = Json.array();
    this.at++; // [
    this.space();
    if (this.text.charCodeAt(this.at) == 0x5d) {
      this.at++;
      return array;
    }
    while (true) {
      array.push(this.value());
      this.space();
      if (this.text.charCodeAt(this.at) == 0x2c) {
        this.at++;
        continue;
      }
      this.expect("]");
      return array;
    }
  }

  string(): string {
    this.expect('"');
    let parts: string[] | null = null; // only for a string with escapes
    let start = this.at;
    while (this.at < this.text.length) {
      const code = this.text.charCodeAt(this.at);
      if (code == 0x22) {
        const last = this.text.substring(start, this.at);
        this.at++;
        if (parts == null) return last;
        parts.push(last);
        return parts.join("");
      }
      if (code != 0x5c) {
        this.at++;
        continue;
      }
      if (parts == null) parts = new Array<string>();
      parts.push(this.text.substring(start, this.at));
      parts.push(this.escape());
      start = this.at;
    }
    throw new Error("JSON: unterminated string");
  }

  escape(): string {
    const code = this.text.charCodeAt(this.at + 1);
    this.at += 2;
    if (code == 0x6e) return "\n";
    if (code == 0x74) return "\t";
    if (code == 0x72) return "\r";
    if (code == 0x62) return "\b";
    if (code == 0x66) return "\f";
    if (code == 0x75) {
      const unit = I32.parseInt(this.text.substring(this.at, this.at + 4), 16);
      this.at += 4;
      return String.fromCharCode(unit);
    }
    return String.fromCharCode(code); // \" \\ \/
  }

  number(): Json {
    const start = this.at;
    while (this.at < this.text.length) {
      const code = this.text.charCodeAt(this.at);
      const numeric = (code >= 0x30 && code <= 0x39) || code == 0x2d || code == 0x2b || code == 0x2e;
      if (!numeric && code != 0x65 && code != 0x45) break;
      this.at++;
    }
    if (this.at == start) throw new Error("JSON: unexpected character");
    return Json.fromNumber(decimal(this.text, start, this.at));
  }
}

// A JSON number as the nearest double. AssemblyScript's parseFloat read 17 significant digits with an exponent
// that leaves 23 to 37 after them 10^(that - 22) times too small (3.2398712582659267e+50 as ...e+38): its fast
// path scales the double and then goes on from the integer. This is its reading without that step: the first 19
// significant digits (the rest marking the value inexact), then exact arithmetic where a double holds the digits
// and the power of ten, else the 64-bit fixed-point scaling of jdh8/metallic that AssemblyScript's std uses.
const SIGNIFICANT = 19;
const EXACT_POWERS: f64[] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

function decimal(text: string, start: i32, end: i32): f64 {
  let at = start;
  const negative = text.charCodeAt(at) == 0x2d;
  if (negative) at++;
  let digits: u64 = 0;
  let counted = 0; // significant digits read, the leading zeros aside
  let exponent = 0;
  let pointed = false;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code == 0x2e) {
      pointed = true;
      continue;
    }
    if (code < 0x30 || code > 0x39) break;
    const digit = <u64>(code - 0x30);
    if (counted == 0 && digit == 0) {
      if (pointed) exponent--;
      continue;
    }
    if (counted < SIGNIFICANT) {
      digits = digits * 10 + digit;
      if (pointed) exponent--;
    } else {
      if (digit != 0) digits |= 1;
      if (!pointed) exponent++;
    }
    counted++;
  }
  const written = at < end ? exponentOf(text, at + 1, end) : 0;
  const power = exponent + written;
  let magnitude = scientific(digits, power);
  const exact = digits <= 9007199254740991 && power >= -22 && power <= 22;
  // below -342 the number is under half the smallest double (`scientific` gives 0) whatever its digits
  if (!exact && digits != 0 && power >= -342 && magnitude < Infinity) {
    magnitude = nearestDouble(magnitude, text, start, end, written);
  }
  return negative ? -magnitude : magnitude;
}

// The scaling above can be one unit in the last place off; `nearestDouble` compares the number's own digits (up to
// EXACT_DIGITS of them, the rest marked by one more digit) with the halfway points to the doubles either side of
// `near`, in integers, and takes the one the number is nearest (ties to even), as correctly rounded readers do.
const EXACT_DIGITS = 800; // a double's halfway points have at most 767 significant digits

function nearestDouble(near: f64, text: string, start: i32, end: i32, written: i32): f64 {
  const digits = new Big();
  let exponent = written;
  let counted = 0;
  let pointed = false;
  let rest = false;
  for (let at = start; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code == 0x2e) {
      pointed = true;
      continue;
    }
    if (code == 0x2d) continue;
    if (code < 0x30 || code > 0x39) break;
    const digit = <u32>(code - 0x30);
    if (counted == 0 && digit == 0) {
      if (pointed) exponent--;
      continue;
    }
    if (counted < EXACT_DIGITS) {
      digits.multiplyAdd(10, digit);
      if (pointed) exponent--;
      counted++;
    } else {
      if (digit != 0) rest = true;
      if (!pointed) exponent++;
    }
  }
  if (rest) {
    digits.multiplyAdd(10, 1);
    exponent--;
  }
  const bits = reinterpret<u64>(near);
  const field = <i32>(bits >> 52);
  const fraction = bits & 0xfffffffffffff;
  const significand = field == 0 ? fraction : fraction | (<u64>1 << 52);
  const power = (field == 0 ? 1 : field) - 1075; // near = significand * 2^power
  const odd = (significand & 1) != 0;
  const above = compareHalfway(digits, exponent, significand * 2 + 1, power - 1);
  if (above > 0 || (above == 0 && odd)) return reinterpret<f64>(bits + 1);
  if (significand == 0) return near; // 0, below the smallest double: no double below it to take
  const narrower = fraction == 0 && field > 1; // below a power of two, the doubles are twice as close
  const halfway = narrower ? significand * 4 - 1 : significand * 2 - 1;
  const below = compareHalfway(digits, exponent, halfway, narrower ? power - 2 : power - 1);
  if (below < 0 || (below == 0 && odd)) return reinterpret<f64>(bits - 1);
  return near;
}

/** The sign of digits * 10^exponent - halfway * 2^power, in integers. */
function compareHalfway(digits: Big, exponent: i32, halfway: u64, power: i32): i32 {
  const left = digits.copy();
  const right = new Big();
  right.limbs = [<u32>(halfway & 0xffffffff), <u32>(halfway >> 32)];
  // digits * 5^exponent * 2^exponent against halfway * 2^power
  (exponent >= 0 ? left : right).multiplyByPowerOfFive(exponent >= 0 ? exponent : -exponent);
  const twos = min(exponent, power);
  left.shiftLeft(exponent - twos);
  right.shiftLeft(power - twos);
  return left.compare(right);
}

/** A non-negative integer of 32-bit limbs, least significant first. */
class Big {
  limbs: u32[] = [0];

  copy(): Big {
    const copied = new Big();
    copied.limbs = this.limbs.slice(0);
    return copied;
  }

  multiplyAdd(factor: u32, addend: u32): void {
    let carry = <u64>addend;
    for (let i = 0; i < this.limbs.length; i++) {
      const product = <u64>unchecked(this.limbs[i]) * factor + carry;
      unchecked((this.limbs[i] = <u32>product));
      carry = product >> 32;
    }
    if (carry != 0) this.limbs.push(<u32>carry);
  }

  multiplyByPowerOfFive(count: i32): void {
    for (; count >= 13; count -= 13) this.multiplyAdd(1220703125, 0); // 5^13, the most a limb holds
    this.multiplyAdd(<u32>Math.pow(5, count), 0);
  }

  shiftLeft(bits: i32): void {
    const whole = bits >> 5;
    const part = <u32>(bits & 31);
    if (part != 0) {
      let carry: u32 = 0;
      for (let i = 0; i < this.limbs.length; i++) {
        const limb = unchecked(this.limbs[i]);
        unchecked((this.limbs[i] = (limb << part) | carry));
        carry = limb >> (32 - part);
      }
      if (carry != 0) this.limbs.push(carry);
    }
    if (whole > 0) {
      const shifted = new Array<u32>(whole).fill(0);
      this.limbs = shifted.concat(this.limbs);
    }
  }

  trim(): void {
    while (this.limbs.length > 1 && this.limbs[this.limbs.length - 1] == 0) this.limbs.pop();
  }

  compare(other: Big): i32 {
    this.trim();
    other.trim();
    if (this.limbs.length != other.limbs.length) return this.limbs.length < other.limbs.length ? -1 : 1;
    for (let i = this.limbs.length - 1; i >= 0; i--) {
      const a = unchecked(this.limbs[i]);
      const b = unchecked(other.limbs[i]);
      if (a != b) return a < b ? -1 : 1;
    }
    return 0;
  }
}

function exponentOf(text: string, start: i32, end: i32): i32 {
  let at = start;
  const sign = text.charCodeAt(at) == 0x2d ? -1 : 1;
  if (text.charCodeAt(at) == 0x2d || text.charCodeAt(at) == 0x2b) at++;
  let value = 0;
  for (; at < end; at++) {
    if (value < 100000) value = value * 10 + (text.charCodeAt(at) - 0x30);
  }
  return sign * value;
}

function scientific(digits: u64, exponent: i32): f64 {
  if (digits == 0 || exponent < -342) return 0;
  if (exponent > 308) return Infinity;
  if (digits <= 9007199254740991 && exponent >= -22 && exponent <= 22) {
    const exact = <f64>digits;
    return exponent >= 0 ? exact * EXACT_POWERS[exponent] : exact / EXACT_POWERS[-exponent];
  }
  return exponent < 0 ? scaleDown(digits, exponent) : scaleUp(digits, exponent);
}

let fixmulShift: u64 = 0;

function fixmul(a: u64, b: u32): u64 {
  const low = (a & 0xffffffff) * b;
  const high = (a >> 32) * b + (low >> 32);
  const overflow = <u32>(high >> 32);
  const space = clz(overflow);
  const revspace: u64 = 32 - space;
  fixmulShift += revspace;
  return ((high << space) | ((low & 0xffffffff) >> revspace)) + (((low << space) >> 31) & 1);
}

function scaleUp(significand: u64, exponent: i32): f64 {
  const coefficient: u32 = 1220703125; // 1e13 * 0x1p-13
  let shift = ctz(significand);
  significand >>= shift;
  fixmulShift = shift + exponent;
  for (; exponent >= 13; exponent -= 13) significand = fixmul(significand, coefficient);
  significand = fixmul(significand, <u32>Math.pow(5, exponent));
  return NativeMath.scalbn(<f64>significand, <i32>fixmulShift);
}

function scaleDown(significand: u64, exponent: i32): f64 {
  const denominator: u64 = 6103515625; // 1e14 * 0x1p-14
  const scale = reinterpret<f64>(0x3f06849b86a12b9b); // 1e-14 * 0x1p32
  let shift = clz(significand);
  significand <<= shift;
  shift = exponent - shift;
  for (; exponent <= -14; exponent += 14) {
    const q = significand / denominator;
    const r = significand % denominator;
    const s = clz(q);
    significand = (q << s) + <u64>nearest(scale * <f64>(r << (s - 18)));
    shift -= s;
  }
  const b = <u64>Math.pow(5, -exponent);
  const q = significand / b;
  const r = significand % b;
  const s = clz(q);
  significand = (q << s) + <u64>(reinterpret<f64>(reinterpret<u64>(<f64>r) + (s << 52)) / <f64>b);
  shift -= s;
  return NativeMath.scalbn(<f64>significand, <i32>shift);
}
