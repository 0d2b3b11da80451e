// A JSON guest: totals of an order. `ngixi run totals.ngx total --input '{"items": [...]}'`

import { input, output, Json } from "ngixi-data";

export function total(): void {
  const order = input.json();
  const items = order.get("items");
  let count = 0.0;
  let sum = 0.0;
  let priciest: Json | null = null;
  let highest = -Infinity;
  if (items != null) {
    for (let i = 0; i < items.items.length; i++) {
      const item = items.items[i];
      const price = item.get("price");
      const quantity = item.get("quantity");
      const each = price != null ? price.number : 0;
      const many = quantity != null ? quantity.number : 1;
      count += many;
      sum += each * many;
      if (each > highest) {
        highest = each;
        const name = item.get("name");
        priciest = name;
      }
    }
  }
  const currency = order.get("currency");
  const totals = Json.object().set("items", Json.fromNumber(count)).set("total", Json.fromNumber(sum));
  if (priciest != null) totals.set("priciest", priciest);
  output.json(totals.set("currency", currency != null ? currency : Json.fromString("EUR")));
}
