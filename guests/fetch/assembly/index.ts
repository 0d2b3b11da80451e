// A library guest fetching over HTTP through the host, which checks the manifest's allowlist.

@external("ngixi", "http_fetch")
declare function http_fetch(
  method: usize, methodLength: i32, url: usize, urlLength: i32, headers: usize, headersLength: i32,
  body: usize, bodyLength: i32, buffer: usize, bufferSize: i32, result: usize,
): i32;
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: i32, iovs: usize, count: i32, done: usize): i32;

const STDOUT: i32 = 1;
const scratch = memory.data(16); // the response's status and body length, then one iovec

/** Prints the body; returns the HTTP status, or minus the ngixi status code when refused or failed. */
function get(url: string): i32 {
  const method = String.UTF8.encode("GET");
  const target = String.UTF8.encode(url);
  const body = new ArrayBuffer(4096);
  const code = http_fetch(
    changetype<usize>(method), method.byteLength, changetype<usize>(target), target.byteLength, 0, 0, 0, 0,
    changetype<usize>(body), body.byteLength, scratch,
  );
  if (code != 0) return -code;
  store<u32>(scratch + 8, changetype<usize>(body));
  store<u32>(scratch + 12, min(load<i32>(scratch + 4), body.byteLength));
  fd_write(STDOUT, scratch + 8, 1, scratch + 4);
  return load<i32>(scratch);
}

export function fetch_hello(): i32 {
  return get("http://127.0.0.1:18080/hello");
}

/** Not on the allowlist: returns -1 (DENIED) without any network access. */
export function fetch_elsewhere(): i32 {
  return get("https://example.com/");
}
