// A component guest taking and returning structured data; its types come from ../world.wit.

import { Handling, Item, Option, ParseError, Result, Summary, Unit } from "ngixi-guest";

type Parsed = Result<Item, ParseError>;

function digits(text: string): bool {
  if (text.length == 0 || text.length > 18) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

function unitOf(text: string): i32 {
  if (text == "piece") return Unit.Piece;
  if (text == "kg") return Unit.Kg;
  if (text == "litre") return Unit.Litre;
  return -1;
}

function flagOf(text: string): u32 {
  if (text == "fragile") return Handling.Fragile;
  if (text == "cold") return Handling.Cold;
  if (text == "bulky") return Handling.Bulky;
  return 0;
}

export function parse(line: string): Parsed {
  const fields = line.split(",");
  for (let i = 0; i < 4; i++) {
    if (i >= fields.length || fields[i].trim().length == 0) return Result.err<Item, ParseError>(ParseError.missingField(i + 1));
  }
  const quantity = fields[1].trim(), unit = unitOf(fields[2].trim()), price = fields[3].trim();
  if (!digits(quantity)) return Result.err<Item, ParseError>(ParseError.badNumber(quantity));
  if (unit < 0) return Result.err<Item, ParseError>(ParseError.unknownUnit(fields[2].trim()));
  if (!digits(price)) return Result.err<Item, ParseError>(ParseError.badNumber(price));
  let handling: u32 = 0;
  if (fields.length > 4 && fields[4].length > 0) {
    const names = fields[4].split("+");
    for (let i = 0; i < names.length; i++) {
      const flag = flagOf(names[i].trim());
      if (flag == 0) return Result.err<Item, ParseError>(ParseError.unknownFlag(names[i].trim()));
      handling |= flag;
    }
  }
  const note = fields.length > 5 ? Option.some<string>(fields.slice(5).join(",")) : Option.none<string>();
  const item = new Item(fields[0].trim(), <u32>I64.parseInt(quantity), <Unit>unit, U64.parseInt(price), handling, note);
  return Result.ok<Item, ParseError>(item);
}

export function summarize(items: Array<Item>, discountPercent: Option<u8>): Summary {
  let total: u64 = 0, needs: u32 = 0, heaviest = Option.none<string>(), most: u32 = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    total += <u64>item.quantity * item.priceCents;
    needs |= item.handling;
    if (item.unit == Unit.Kg && item.quantity > most) {
      most = item.quantity;
      heaviest = Option.some<string>(item.name);
    }
  }
  if (discountPercent.isSome) total -= (total * <u64>min<u8>(discountPercent.value, 100)) / 100;
  return new Summary(<u32>items.length, total, heaviest, needs);
}
