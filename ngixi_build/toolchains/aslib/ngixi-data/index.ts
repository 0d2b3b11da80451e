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

  /** Writes a JSON value as the call's output. */
  export function json(value: Json): void {
    text(value.toString());
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
  items: Json[] = [];
  keys: string[] = [];
  values: Json[] = [];

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
    const parts = new Array<string>();
    write(this, parts);
    return parts.join("");
  }

  static parse(text: string): Json {
    const parser = new Parser(text);
    const value = parser.value();
    parser.space();
    if (parser.at < text.length) throw new Error("JSON: unexpected text after the value");
    return value;
  }
}

function write(value: Json, parts: string[]): void {
  switch (value.kind) {
    case JsonKind.Null:
      parts.push("null");
      break;
    case JsonKind.Bool:
      parts.push(value.bool ? "true" : "false");
      break;
    case JsonKind.Number:
      parts.push(numberText(value.number));
      break;
    case JsonKind.String:
      quote(value.string, parts);
      break;
    case JsonKind.Array:
      parts.push("[");
      for (let i = 0; i < value.items.length; i++) {
        if (i > 0) parts.push(",");
        write(value.items[i], parts);
      }
      parts.push("]");
      break;
    default:
      parts.push("{");
      for (let i = 0; i < value.keys.length; i++) {
        if (i > 0) parts.push(",");
        quote(value.keys[i], parts);
        parts.push(":");
        write(value.values[i], parts);
      }
      parts.push("}");
  }
}

function numberText(value: f64): string {
  if (!isFinite(value)) return "null"; // JSON has no NaN or Infinity
  if (value == Math.floor(value) && Math.abs(value) < 9007199254740992) return (<i64>value).toString();
  return value.toString();
}

const HEX = "0123456789abcdef";

function quote(text: string, parts: string[]): void {
  parts.push('"');
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code != 0x22 && code != 0x5c) continue;
    parts.push(text.substring(start, i));
    if (code == 0x22) parts.push('\\"');
    else if (code == 0x5c) parts.push("\\\\");
    else if (code == 0x0a) parts.push("\\n");
    else if (code == 0x0d) parts.push("\\r");
    else if (code == 0x09) parts.push("\\t");
    else parts.push("\\u00" + HEX.charAt(code >> 4) + HEX.charAt(code & 15));
    start = i + 1;
  }
  parts.push(text.substring(start));
  parts.push('"');
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
    while (true) {
      this.space();
      const key = this.string();
      this.space();
      this.expect(":");
      object.set(key, this.value());
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
    const parts = new Array<string>();
    let start = this.at;
    while (this.at < this.text.length) {
      const code = this.text.charCodeAt(this.at);
      if (code == 0x22) {
        parts.push(this.text.substring(start, this.at));
        this.at++;
        return parts.join("");
      }
      if (code != 0x5c) {
        this.at++;
        continue;
      }
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
    return Json.fromNumber(parseFloat(this.text.substring(start, this.at)));
  }
}
