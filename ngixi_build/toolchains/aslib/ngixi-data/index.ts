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

/** The call's input length: asked with an empty buffer, the host writes it and copies nothing (BUFFER_TOO_SMALL). */
function inputLength(): usize {
  inputRead(0, 0, LENGTH);
  return <usize>load<u32>(LENGTH);
}

export namespace input {
  /** The call's input as bytes. */
  export function bytes(): Uint8Array {
    const length = inputLength();
    const data = new Uint8Array(<i32>length);
    if (length > 0) inputRead(data.dataStart, <u32>length, LENGTH);
    return data;
  }

  /** The call's input as text (the host checked it is UTF-8), in a string of its exact length and nothing else
   * left behind for the collector. Its UTF-8 is read and its units counted; text of one byte per unit (ASCII) is then
   * read again into the upper half of the string's own block and widened in place, so it never needs three bytes per
   * byte at once; other text is decoded from the bytes read. */
  export function text(): string {
    const length = inputLength();
    if (length == 0) return "";
    const utf8 = heap.alloc(length);
    inputRead(utf8, <u32>length, LENGTH);
    const units = unitsOf(utf8, length);
    if (units == length) heap.free(utf8);
    // No allocation between `__new` and the return: the block cannot be collected while only this local holds it.
    const text = __new(units << 1, idof<String>());
    let written = units;
    if (units == length) {
      inputRead(text + length, <u32>length, LENGTH);
      written = widen(text + length, length, text, units);
    } else {
      written = widen(utf8, length, text, units);
      heap.free(utf8);
    }
    // fewer only for bytes that are not UTF-8 (an export declaring bytes that reads them as text)
    return changetype<string>(written == units ? text : __renew(text, written << 1));
  }

  /** The call's input as a JSON value (the host checked it is one JSON document), read from its UTF-8 as it is. */
  export function json(): Json {
    const length = inputLength();
    const utf8 = heap.alloc(length);
    if (length > 0) inputRead(utf8, <u32>length, LENGTH);
    const value = parseUtf8(utf8, length);
    heap.free(utf8);
    return value;
  }
}

export namespace output {
  /** Appends bytes to the call's output. */
  export function bytes(data: Uint8Array): void {
    outputWrite(data.dataStart, data.length);
  }

  /** Appends text, as UTF-8, to the call's output: encoded and written in pieces, never a copy of it whole. */
  export function text(value: string): void {
    const sink = new TextSink(true);
    sink.range(value, 0, value.length);
    sink.finish();
  }

  /** Writes a JSON value as the call's output, in pieces as it goes: never its whole text at once. */
  export function json(value: Json): void {
    const sink = new TextSink(true);
    write(value, sink);
    sink.finish();
  }
}

/** Decodes `length` bytes of UTF-8 at `from` into UTF-16 at `to`, as String.UTF8.decodeUnsafe does, writing at most
 * `capacity` units; returns the units written. `to` may be `from - length`, the string's own block below its UTF-8:
 * a sequence is read whole before its units are written, and they never take more bytes than the input read so far. */
function widen(from: usize, length: usize, to: usize, capacity: usize): usize {
  const end = from + length;
  const limit = to + (capacity << 1);
  let at = to;
  while (from < end && at < limit) {
    let u0 = <u32>load<u8>(from++);
    if (u0 < 0x80) {
      store<u16>(at, u0);
      at += 2;
      continue;
    }
    if (from == end) break;
    const u1 = <u32>load<u8>(from++) & 63;
    if ((u0 & 224) == 192) {
      store<u16>(at, ((u0 & 31) << 6) | u1);
      at += 2;
      continue;
    }
    if (from == end) break;
    const u2 = <u32>load<u8>(from++) & 63;
    if ((u0 & 240) == 224) {
      u0 = ((u0 & 15) << 12) | (u1 << 6) | u2;
    } else {
      if (from == end) break;
      u0 = ((u0 & 7) << 18) | (u1 << 12) | (u2 << 6) | (<u32>load<u8>(from++) & 63);
    }
    if (u0 < 0x10000) {
      store<u16>(at, u0);
      at += 2;
    } else if (at + 4 <= limit) {
      u0 -= 0x10000;
      store<u32>(at, ((u0 >> 10) | 0xd800) | (((u0 & 0x3ff) | 0xdc00) << 16));
      at += 4;
    } else {
      break;
    }
  }
  return (at - to) >> 1;
}

/** How many UTF-16 units `length` bytes of UTF-8 at `from` decode to: one per sequence, two for a 4-byte one. */
function unitsOf(from: usize, length: usize): usize {
  const end = from + length;
  let units: usize = 0;
  for (; from < end; from++) {
    const byte = <u32>load<u8>(from);
    units += <usize>((byte & 0xc0) != 0x80) + <usize>(byte >= 0xf0);
  }
  return units;
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

  /** The value of a JSON document, read from its UTF-8 (a lone surrogate, which UTF-8 cannot hold, as WTF-8). Text that
   * is not one JSON document (RFC 8259), or one past the host's limits (nested more than MAX_DEPTH deep, a number
   * beyond a double's range), is refused as the host refuses it: the call ends with a line saying what and where. */
  static parse(text: string): Json {
    const length = <usize>String.UTF8.byteLength(text);
    const utf8 = heap.alloc(length);
    String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, utf8);
    const value = parseUtf8(utf8, length);
    heap.free(utf8);
    return value;
  }
}

// How many UTF-16 units of text the output's buffer takes at a time: up to three bytes of UTF-8 each.
const OUTPUT_UNITS = 16384;
const OUTPUT_BYTES: usize = OUTPUT_UNITS * 3;

/** Where `write` puts a value's text: its pieces, kept (for `toString`), or encoded into a buffer of OUTPUT_BYTES
 * that goes to the output whenever it is full (`streaming`). */
class TextSink {
  parts: string[] = [];
  buffer: usize = 0;
  used: usize = 0;

  constructor(public streaming: bool) {
    if (streaming) this.buffer = heap.alloc(OUTPUT_BYTES);
  }

  push(piece: string): void {
    this.range(piece, 0, piece.length);
  }

  /** The units of `text` from `start` to `end`: copied into a string of their own only when kept. */
  range(text: string, start: i32, end: i32): void {
    if (!this.streaming) {
      this.parts.push(text.substring(start, end));
      return;
    }
    while (start < end) {
      const room = <i32>((OUTPUT_BYTES - this.used) / 3);
      if (room < 2) {
        this.flush();
        continue;
      }
      let stop = min(end, start + room);
      // a surrogate pair stays in one piece: encoded apart, its halves would be two lone surrogates
      if (stop < end && (text.charCodeAt(stop - 1) & 0xfc00) == 0xd800) stop--;
      const from = changetype<usize>(text) + (<usize>start << 1);
      this.used += String.UTF8.encodeUnsafe(from, stop - start, this.buffer + this.used);
      start = stop;
    }
  }

  flush(): void {
    if (this.used > 0) outputWrite(this.buffer, <u32>this.used);
    this.used = 0;
  }

  /** Writes what is left and lets the buffer go. */
  finish(): void {
    this.flush();
    heap.free(this.buffer);
    this.buffer = 0;
  }
}

/** Writes `value`, inside `depth` arrays and objects, to `sink`; deeper than the host reads (MAX_DEPTH) ends the call,
 * before the recursion can run out of shadow stack. */
function write(value: Json, sink: TextSink, depth: i32 = 0): void {
  if (depth >= MAX_DEPTH && value.kind >= JsonKind.Array) {
    const limit = MAX_DEPTH.toString();
    throw new Error("JSON: arrays and objects nested more than " + limit + " deep, past the host's limit");
  }
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
        write(value.items[i], sink, depth + 1);
      }
      sink.push("]");
      break;
    default:
      sink.push("{");
      for (let i = 0; i < value.keys.length; i++) {
        if (i > 0) sink.push(",");
        quote(value.keys[i], sink);
        sink.push(":");
        write(value.values[i], sink, depth + 1);
      }
      sink.push("}");
  }
}

function numberText(value: f64): string {
  // JSON has no NaN or Infinity: ended here as the host refuses them in any guest's output, never written as null
  if (!isFinite(value)) {
    const name = isNaN(value) ? "NaN" : value < 0 ? "-Infinity" : "Infinity";
    const remedy = "RFC 8259 has no NaN or Infinity: write null or a string in its place";
    throw new Error("JSON: " + name + " is not JSON (" + remedy + ")");
  }
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
    sink.range(text, start, i);
    if (code == 0x22) sink.push('\\"');
    else if (code == 0x5c) sink.push("\\\\");
    else if (code == 0x0a) sink.push("\\n");
    else if (code == 0x0d) sink.push("\\r");
    else if (code == 0x09) sink.push("\\t");
    else sink.push("\\u" + hex4(code)); // a control character, or a lone surrogate, which UTF-8 cannot hold
    start = i + 1;
  }
  sink.range(text, start, text.length);
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

/** A document's value, read from `length` bytes of UTF-8 at `start` (memory the caller lets go of after). */
function parseUtf8(start: usize, length: usize): Json {
  const parser = new Parser(start, start + length);
  const value = parser.value();
  parser.space();
  if (parser.at < parser.end) parser.fail("more text after the document's value");
  return value;
}

// How deep arrays and objects may nest: the host's limit (guest/data.py's MAX_JSON_DEPTH), well within the
// shadow stack the parser and writer recurse on.
const MAX_DEPTH = 512;

/** Reads JSON from UTF-8 in memory, `at` to `end`: a string value is decoded once, into a string of its exact length.
 * It reads the grammar of RFC 8259 and nothing else, as the host's check does. */
class Parser {
  depth: i32 = 0;
  start: usize;

  constructor(public at: usize, public end: usize) {
    this.start = at;
  }

  /** Ends the call: not JSON, saying what and at which byte of the document. */
  fail(what: string): void {
    throw new Error("JSON: " + what + " at byte " + (this.at - this.start).toString());
  }

  /** One level deeper into an array or object. */
  enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail("arrays and objects nested more than " + MAX_DEPTH.toString() + " deep");
  }

  /** The byte at `at`, or -1 at the end. */
  peek(): i32 {
    return this.at < this.end ? <i32>load<u8>(this.at) : -1;
  }

  space(): void {
    while (this.at < this.end) {
      const code = load<u8>(this.at);
      if (code != 0x20 && code != 0x09 && code != 0x0a && code != 0x0d) return;
      this.at++;
    }
  }

  expect(word: string): void {
    for (let i = 0; i < word.length; i++) {
      if (this.peek() != word.charCodeAt(i)) this.fail("expected " + word);
      this.at++;
    }
  }

  value(): Json {
    this.space();
    const code = this.peek();
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
    this.enter();
    this.at++; // {
    this.space();
    if (this.peek() == 0x7d) {
      this.at++;
      this.depth--;
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
      if (this.peek() == 0x2c) {
        this.at++;
        continue;
      }
      this.expect("}");
      this.depth--;
      return object;
    }
  }

  array(): Json {
    const array = Json.array();
    this.enter();
    this.at++; // [
    this.space();
    if (this.peek() == 0x5d) {
      this.at++;
      this.depth--;
      return array;
    }
    while (true) {
      array.push(this.value());
      this.space();
      if (this.peek() == 0x2c) {
        this.at++;
        continue;
      }
      this.expect("]");
      this.depth--;
      return array;
    }
  }

  /** A string: its units counted first (an escape is one, as `\\uXXXX` each of a pair), then decoded into them. */
  string(): string {
    this.expect('"');
    const start = this.at;
    let units: usize = 0;
    let escaped = false;
    while (true) {
      if (this.at >= this.end) this.fail("a string not ended by a quote");
      const code = load<u8>(this.at);
      if (code == 0x22) break;
      if (code < 0x20) this.fail("a control character not escaped in a string");
      if (code == 0x5c) {
        escaped = true;
        units++;
        this.escape();
        continue;
      }
      units += <usize>((code & 0xc0) != 0x80) + <usize>(code >= 0xf0);
      this.at++;
    }
    const end = this.at;
    this.at++; // "
    if (units == 0) return "";
    const text = __new(units << 1, idof<String>()); // no allocation below until it is returned
    const written = escaped ? unescape(start, end, text, units) : widen(start, end - start, text, units);
    return changetype<string>(written == units ? text : __renew(text, written << 1));
  }

/** Steps over one escape at `at` (its backslash first): one of JSON's, `\\uXXXX` with four hex digits. */
  escape(): void {
    const code = this.at + 1 < this.end ? <i32>load<u8>(this.at + 1) : -1;
    if (code == 0x75) {
      for (let i: usize = 2; i < 6; i++) {
        const digit = this.at + i < this.end ? <i32>load<u8>(this.at + i) | 0x20 : -1;
        if (!isDigit(digit) && !(digit >= 0x61 && digit <= 0x66)) this.fail("\\u not followed by four hex digits");
      }
      this.at += 6;
      return;
    }
    if (!isEscape(code)) this.fail("an escape JSON does not have");
    this.at += 2;
  }

  /** A number as RFC 8259 writes it: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, read as the nearest
   * double, refused beyond a double's range as the host refuses it. */
  number(): Json {
    const start = this.at;
    if (this.peek() == 0x2d) this.at++;
    if (this.peek() == 0x30) this.at++;
    else if (!this.digits()) {
      this.fail(this.at == this.end ? "the text ends where a value should be" : "not a JSON value");
    }
    if (this.peek() == 0x2e) {
      this.at++;
      if (!this.digits()) this.fail("a number's point not followed by a digit");
    }
    if ((this.peek() | 0x20) == 0x65) {
      this.at++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.at++;
      if (!this.digits()) this.fail("a number's exponent without a digit");
    }
    const value = decimal(start, this.at);
    if (!isFinite(value)) {
      this.at = start;
      this.fail("a number beyond a double's range");
    }
    return Json.fromNumber(value);
  }

  /** Steps over decimal digits; whether there was one. */
  digits(): bool {
    const from = this.at;
    while (this.at < this.end && isDigit(<i32>load<u8>(this.at))) this.at++;
    return this.at > from;
  }
}

/** Whether `code` may follow a backslash, u aside: `"`, `\\`, `/`, b, f, n, r, t. */
function isEscape(code: i32): bool {
  return code == 0x22 || code == 0x5c || code == 0x2f || code == 0x62 || code == 0x66 || code == 0x6e ||
    code == 0x72 || code == 0x74;
}

function isDigit(code: i32): bool {
  return code >= 0x30 && code <= 0x39;
}

/** Decodes a string's UTF-8 from `from` to `end` with its escapes into at most `capacity` units at `to`; returns the
 * units written. */
function unescape(from: usize, end: usize, to: usize, capacity: usize): usize {
  let written: usize = 0;
  while (from < end && written < capacity) {
    let run = from;
    while (run < end && load<u8>(run) != 0x5c) run++;
    written += widen(from, run - from, to + (written << 1), capacity - written);
    if (run >= end || written >= capacity) break;
    const code = run + 1 < end ? <u32>load<u8>(run + 1) : 0;
    let unit = code;
    if (code == 0x6e) unit = 0x0a;
    else if (code == 0x74) unit = 0x09;
    else if (code == 0x72) unit = 0x0d;
    else if (code == 0x62) unit = 0x08;
    else if (code == 0x66) unit = 0x0c;
    else if (code == 0x75) unit = hexUnit(run + 2, end);
    store<u16>(to + (written << 1), unit); // \" \\ \/ as themselves
    written++;
    from = run + (code == 0x75 ? 6 : 2);
  }
  return written;
}

/** The unit of a `\\u` escape's four hex digits at `from`. */
function hexUnit(from: usize, end: usize): u32 {
  if (from + 4 > end) throw new Error("JSON: expected four hex digits after \\u");
  let unit: u32 = 0;
  for (let i: usize = 0; i < 4; i++) {
    const code = <u32>load<u8>(from + i);
    let digit: u32;
    if (code >= 0x30 && code <= 0x39) digit = code - 0x30;
    else if ((code | 0x20) >= 0x61 && (code | 0x20) <= 0x66) digit = (code | 0x20) - 0x57;
    else throw new Error("JSON: expected four hex digits after \\u");
    unit = (unit << 4) | digit;
  }
  return unit;
}

// A JSON number as the nearest double. AssemblyScript's parseFloat read 17 significant digits with an exponent
// that leaves 23 to 37 after them 10^(that - 22) times too small (3.2398712582659267e+50 as ...e+38): its fast
// path scales the double and then goes on from the integer. This is its reading without that step: the first 19
// significant digits (the rest marking the value inexact), then exact arithmetic where a double holds the digits
// and the power of ten, else the 64-bit fixed-point scaling of jdh8/metallic that AssemblyScript's std uses.
const SIGNIFICANT = 19;
const EXACT_POWERS: f64[] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

function decimal(start: usize, end: usize): f64 {
  let at = start;
  const negative = load<u8>(at) == 0x2d;
  if (negative) at++;
  let digits: u64 = 0;
  let counted = 0; // significant digits read, the leading zeros aside
  let exponent = 0;
  let pointed = false;
  for (; at < end; at++) {
    const code = load<u8>(at);
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
  const written = at < end ? exponentOf(at + 1, end) : 0;
  const power = exponent + written;
  let magnitude = scientific(digits, power);
  const exact = digits <= 9007199254740991 && power >= -22 && power <= 22;
  // below -342 the number is under half the smallest double (`scientific` gives 0) whatever its digits
  if (!exact && digits != 0 && power >= -342 && magnitude < Infinity) {
    magnitude = nearestDouble(magnitude, start, end, written);
  }
  return negative ? -magnitude : magnitude;
}

// The scaling above can be one unit in the last place off; `nearestDouble` compares the number's own digits (up to
// EXACT_DIGITS of them, the rest marked by one more digit) with the halfway points to the doubles either side of
// `near`, in integers, and takes the one the number is nearest (ties to even), as correctly rounded readers do.
const EXACT_DIGITS = 800; // a double's halfway points have at most 767 significant digits

function nearestDouble(near: f64, start: usize, end: usize, written: i32): f64 {
  const digits = new Big();
  let exponent = written;
  let counted = 0;
  let pointed = false;
  let rest = false;
  for (let at = start; at < end; at++) {
    const code = load<u8>(at);
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

function exponentOf(start: usize, end: usize): i32 {
  let at = start;
  const sign = load<u8>(at) == 0x2d ? -1 : 1;
  if (load<u8>(at) == 0x2d || load<u8>(at) == 0x2b) at++;
  let value = 0;
  for (; at < end; at++) {
    if (value < 100000) value = value * 10 + (<i32>load<u8>(at) - 0x30);
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
