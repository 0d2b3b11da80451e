// A text guest: word statistics of its input, as text. `ngixi run words.ngx stats --input @book.txt`

import { input, output } from "ngixi-data";

function isSpace(code: i32): bool {
  return code == 0x20 || code == 0x09 || code == 0x0a || code == 0x0d;
}

export function stats(): void {
  const text = input.text();
  let words = 0;
  let lines = text.length > 0 && text.charCodeAt(text.length - 1) != 0x0a ? 1 : 0;
  let longest = "";
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 0x20;
    if (code == 0x0a) lines++;
    if (!isSpace(code)) {
      if (start < 0) start = i;
      continue;
    }
    if (start >= 0) {
      words++;
      const word = text.substring(start, i);
      if (word.length > longest.length) longest = word;
      start = -1;
    }
  }
  output.text(`words: ${words}\nlines: ${lines}\ncharacters: ${text.length}\nlongest: ${longest}\n`);
}

export function shout(): void {
  output.text(input.text().toUpperCase());
}
