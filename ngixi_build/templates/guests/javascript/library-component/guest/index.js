// A JavaScript component guest: its exports are typed by WIT (a string in, a string out), and it calls the
// host through the WIT catalog's interfaces its manifest grants, imported by their WIT names (`ngixi wit`
// shows them). Granting another capability in the manifest makes its interface importable here.
import { write } from "ngixi:host/log@0.1.0";

/** "Hello, <name>!", and a log line saying who was greeted. */
export function greet(name) {
  write(`{{name}} greets ${name}`);
  return `Hello, ${name}!`;
}
