// A component guest with typed exports: text in, a record (or a list of records) out.
// Its types come from ../world.wit; the build generates them as the package "ngixi-guest".

import { Stats, WordCount } from "ngixi-guest";

function isSpace(code: i32): bool {
  return code == 32 || code == 9 || code == 10 || code == 13;
}

function split(text: string): Array<string> {
  const words = new Array<string>();
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const space = isSpace(text.charCodeAt(i));
    if (space && start >= 0) {
      words.push(text.substring(start, i));
      start = -1;
    } else if (!space && start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(text.substring(start));
  return words;
}

function codePoints(text: string): u32 {
  let count: u32 = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff) count++; // a low surrogate ends a pair already counted
  }
  return count;
}

export function analyze(text: string): Stats {
  const words = split(text);
  let longest = "";
  for (let i = 0; i < words.length; i++) {
    if (codePoints(words[i]) > codePoints(longest)) longest = words[i];
  }
  let lines: u32 = text.length > 0 ? 1 : 0;
  for (let i = 0; i < text.length - 1; i++) {
    if (text.charCodeAt(i) == 10) lines++;
  }
  return new Stats(<u32>words.length, lines, codePoints(text), longest);
}

function byCountThenWord(a: WordCount, b: WordCount): i32 {
  if (a.count != b.count) return a.count > b.count ? -1 : 1;
  return a.word < b.word ? -1 : a.word > b.word ? 1 : 0;
}

export function frequencies(text: string, limit: u32): Array<WordCount> {
  const counts = new Map<string, u32>();
  const words = split(text);
  for (let i = 0; i < words.length; i++) {
    const word = words[i].toLowerCase();
    counts.set(word, counts.has(word) ? counts.get(word) + 1 : 1);
  }
  const keys = counts.keys();
  const out = new Array<WordCount>();
  for (let i = 0; i < keys.length; i++) out.push(new WordCount(keys[i], counts.get(keys[i])));
  out.sort(byCountThenWord);
  return <u32>out.length > limit ? out.slice(0, <i32>limit) : out;
}
