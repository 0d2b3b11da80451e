-- Lua 5.3 inside yowasp-silice's silice.wasm, run by its preprocessor ($$dofile from main.si): each check prints
-- one line, "name: what it returned", so that a differing line names its check (a Lua error ends the program: this
-- build's pcall catches none, so each error is an ending of its own). Lua's
-- io and os libraries reach WASI through wasi-libc's stdio: files in the mounts, their errors and errno values,
-- seeks, large reads and writes, standard input, the environment, clocks and exit codes. The endings (the last
-- check of a run, or the only one with -D ENDING=name) are at the bottom.
--
-- /ro (read-only) holds given.txt ("given\n"), big.bin (20 MiB), tree/x.txt and the host's links: link ->
-- given.txt, chain -> link, dirlink -> tree, loop -> loop, dangling -> nowhere, absolute -> /ro/given.txt, up ->
-- ../ro/given.txt, outside -> ../../etc/passwd. /work holds target.txt, wlink -> target.txt, wdirlink -> wdir,
-- wdirlink2 -> full, dangle -> created.txt, dangle-out -> ../out.txt, dangle-abs -> /work/abs.txt, wdir/,
-- full/inner.txt, empty/ and empty2/; /tmp starts empty. Arguments come as -D defines (ARG1, ARG2), the environment grants
-- GREETING, TMPDIR, EMPTY and EQUALS, and standard input is 3,000 numbered lines.

local function show(value)
  if type(value) == "string" then
    return string.format("%q", value):gsub("\\\n", "\\n")
  elseif type(value) == "table" then
    local parts = {}
    for index = 1, #value do
      parts[index] = show(value[index])
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(value)
end

local function check(name, fn)
  io.write(name, ": ", show(fn()), "\n")
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local function opened(path, mode)  -- io.open's answer: "opened", or its message and errno
  local file, message, code = io.open(path, mode)
  if file then
    file:close()
    return "opened"
  end
  return { message, code }
end

local function read_all(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("a")
  file:close()
  return data
end

local function write_all(path, data)
  local file = assert(io.open(path, "wb"))
  assert(file:write(data))
  assert(file:close())
end

-- the program and its grants ------------------------------------------------------------------------------------

local checks = {}
local function add(name, fn)
  checks[#checks + 1] = { name, fn }
end

add("version", function() return { _VERSION, math.maxinteger, math.type(1), utf8.char(0x263A) } end)
add("arguments", function() return { ARG1, ARG2 } end)
add("environment", function()
  local names = { "GREETING", "TMPDIR", "EMPTY", "EQUALS", "HOME", "PATH" }
  local found = {}
  for index, name in ipairs(names) do
    found[index] = tostring(os.getenv(name))
  end
  return found
end)
add("standard_input", function()
  local first = io.read("l")
  local number = io.read("n")
  local rest = io.read("a")
  local _, lines = rest:gsub("\n", "")
  return { first, number, #rest, lines, io.read("a"), io.read("l"), io.read(0) }
end)
add("wall_clock", function()
  local now = os.time()
  return { now > 1700000000, now < 4102444800, os.difftime(now + 5, now) }
end)
add("process_clock", function()
  local start = os.clock()
  local total = 0
  for n = 1, 200000 do
    total = total + n
  end
  return { start >= 0, os.clock() >= start, total }
end)
add("dates", function()
  return {
    os.date("!%Y-%m-%d %H:%M:%S", 0),
    os.date("!%c", 1000000000),
    os.time({ year = 2000, month = 1, day = 1, hour = 12 }),
    os.date("%Y") >= "2024",
  }
end)
add("random", function()
  math.randomseed(42)
  local a = math.random(1000000)
  math.randomseed(42)
  return a == math.random(1000000)
end)

-- files: reading, and the read-only mount ------------------------------------------------------------------------

add("reading", function()
  local file = assert(io.open("/ro/given.txt"))
  local found = { file:read("l"), file:read("l"), file:seek("cur"), file:seek("end"), io.type(file) }
  file:close()
  return { found, io.type(file), read_all("/ro/link") }
end)
add("lines", function()
  local found = {}
  for line in io.lines("/ro/given.txt", "L") do
    found[#found + 1] = line
  end
  return found
end)
add("big_reads", function()
  local file = assert(io.open("/ro/big.bin", "rb"))
  local first = file:read(20 * 1048576 + 1)
  file:seek("set", 5)
  local lines = 0
  for _ in file:lines(4096) do
    lines = lines + 1
  end
  file:close()
  return { #first, first:byte(-1), lines }
end)
add("through_links", function()
  return {
    read_all("/ro/chain"),
    read_all("/ro/dirlink/x.txt"),
    read_all("/ro/dirlink/../given.txt"),
    opened("/ro/loop", "r"),
    opened("/ro/dangling", "r"),
    opened("/ro/absolute", "r"),
    opened("/ro/up", "r"),
    opened("/ro/dirlink", "w"),
    opened("/ro/dirlink/", "r"),
    opened("/ro/link/", "r"),
    opened("/ro/tree/../given.txt", "r"),
    opened("/ro/nowhere/../given.txt", "r"),
    opened("/ro/.", "r"),
    opened("/ro//tree//x.txt", "r"),
  }
end)
add("writing_to_the_ro_mount", function() return opened("/ro/given.txt", "a") end)
add("creating_on_the_ro_mount", function() return opened("/ro/new.txt", "w") end)
add("updating_on_the_ro_mount", function() return opened("/ro/given.txt", "r+") end)
add("removing_on_the_ro_mount", function() return pack(os.remove("/ro/given.txt")) end)
add("renaming_out_of_the_ro_mount", function() return pack(os.rename("/ro/given.txt", "/work/taken.txt")) end)
add("link_escaping", function() return opened("/ro/outside", "r") end)

-- paths outside the mounts ---------------------------------------------------------------------------------------

add("missing_file", function() return opened("/work/missing.txt", "r") end)
add("missing_directory", function() return opened("/work/no/such.txt", "w") end)
add("escaping_with_dots", function() return opened("/work/../ro/given.txt", "r") end)
add("escaping_far", function() return opened("/work/../../etc/passwd", "r") end)
add("absolute_outside", function() return opened("/etc/passwd", "r") end)
add("relative_path", function() return opened("given.txt", "r") end)
add("the_root", function() return opened("/", "r") end)
add("trailing_slash_on_a_file", function() return opened("/ro/given.txt/", "r") end)
add("name_too_long", function() return opened("/work/" .. string.rep("x", 256), "w") end)
add("longest_name", function()
  local path = "/work/" .. string.rep("x", 255)
  local made = opened(path, "w")
  return { made, os.remove(path) }
end)
add("odd_names", function()
  local found = {}
  for index, name in ipairs({ "a\nb", "tab\there", "\1ctl", "back\\slash", "...", " ", "co:lon", ".", ".." }) do
    local file, message, code = io.open("/work/" .. name, "w")
    found[index] = file and tostring(file:close() and os.remove("/work/" .. name)) or { message, code }
  end
  return found
end)
add("unicode_name", function()
  write_all("/work/ünïcödé ✓.txt", "✓")
  return { read_all("/work/ünïcödé ✓.txt"), os.remove("/work/ünïcödé ✓.txt") }
end)

-- files: writing -------------------------------------------------------------------------------------------------

add("modes", function()
  write_all("/work/modes.txt", "one\n")
  local append = assert(io.open("/work/modes.txt", "a"))
  append:write("two\n")
  append:seek("set", 0)
  append:write("three\n")  -- O_APPEND: at the end all the same
  append:close()
  local update = assert(io.open("/work/modes.txt", "r+"))
  update:write("ONE")
  local rest = update:read("a")
  update:close()
  local both = assert(io.open("/work/modes.txt", "a+"))
  local whole = both:read("a")
  both:write("four\n")
  both:close()
  return { rest, whole, read_all("/work/modes.txt") }
end)
add("truncating", function()
  write_all("/work/cut.txt", string.rep("x", 100))
  local file = assert(io.open("/work/cut.txt", "w+"))
  local found = { file:seek("end"), file:read("a") }
  file:close()
  return found
end)
add("seeking", function()
  local file = assert(io.open("/work/seek.bin", "w+b"))
  file:write("0123456789")
  local found = { file:seek("set", 3) }
  file:write("abc")
  found[#found + 1] = file:seek("end", -2)
  found[#found + 1] = file:read("a")
  found[#found + 1] = file:seek("set", 20)
  file:write("!")
  found[#found + 1] = file:seek("cur")
  found[#found + 1] = pack(file:seek("set", -1))
  found[#found + 1] = pack(file:seek("cur", (1 << 31) - 100))
  file:seek("set", 0)
  found[#found + 1] = file:read("a")
  file:close()
  return found
end)
add("sparse_far", function()
  local file = assert(io.open("/work/sparse.bin", "wb"))
  local position = file:seek("set", 1 << 29)
  file:write("end")
  file:close()
  local again = assert(io.open("/work/sparse.bin", "rb"))
  local found = { position, again:seek("end"), again:read(4), again:seek("set", (1 << 29) - 2), again:read(8) }
  again:close()
  os.remove("/work/sparse.bin")
  return found
end)
add("past_the_disk_quota", function()
  local file = assert(io.open("/work/huge.bin", "wb"))
  file:seek("set", 1 << 30)
  local found = { pack(file:write("end")), pack(file:close()) }
  os.remove("/work/huge.bin")
  return { found[1][1] == file, found[2] }
end)
add("large_write_and_read", function()
  local block = string.rep("0123456789abcdef", 65536)  -- 1 MiB
  local file = assert(io.open("/work/large.bin", "wb"))
  for _ = 1, 12 do
    file:write(block)
  end
  file:close()
  local data = read_all("/work/large.bin")
  return { #data, data == string.rep(block, 12) }
end)
add("one_write_of_17_mib", function()
  local data = string.rep("z", 17 * 1048576)
  local file = assert(io.open("/work/once.bin", "wb"))
  file:setvbuf("no")
  local written = file:write(data) == file
  file:close()
  local size = #read_all("/work/once.bin")
  os.remove("/work/once.bin")
  return { written, size }
end)
add("buffering", function()
  local file = assert(io.open("/work/buffered.txt", "w"))
  local found = { file:setvbuf("full", 8), file:setvbuf("line"), file:setvbuf("no") }
  file:write("a", 1, "b", 2.5, "\n")
  file:flush()
  file:close()
  return { found, read_all("/work/buffered.txt") }
end)
add("numbers", function()
  write_all("/work/numbers.txt", "12 0x1F -3.5e2 nope")
  local file = assert(io.open("/work/numbers.txt"))
  local found = pack(file:read("n", "n", "n", "n"))
  file:close()
  return { found[1], found[2], found[3], found[4], found.n }
end)
add("wrong_way_descriptors", function()
  local written = assert(io.open("/work/modes.txt", "a"))
  local read = pack(written:read("a"))
  written:close()
  local readonly = assert(io.open("/work/modes.txt", "r"))
  local wrote = pack(readonly:write("x"))
  local flushed = pack(readonly:flush())
  readonly:close()
  return { read[1], read[2], read[3], wrote[2], wrote[3], flushed[1], flushed[2], flushed[3] }
end)
add("a_directory_as_a_file", function()
  local file, message, code = io.open("/work", "r")
  if not file then
    return { message, code }
  end
  local found = pack(file:read("a"))
  file:close()
  return { "opened", found[1], found[2], found[3] }
end)
add("a_directory_for_writing", function() return opened("/work", "w") end)

-- names: remove and rename ---------------------------------------------------------------------------------------

add("open_files_outliving_their_names", function()
  write_all("/work/held.txt", "held")
  local reader = assert(io.open("/work/held.txt", "r"))
  local removed = os.remove("/work/held.txt")
  local after_removal = reader:read("a")
  reader:close()
  local writer = assert(io.open("/work/before.txt", "w"))
  writer:write("one ")
  writer:flush()
  local renamed = os.rename("/work/before.txt", "/work/after.txt")
  writer:write("two")
  writer:close()
  local written = read_all("/work/after.txt")
  local first = assert(io.open("/work/after.txt", "r"))
  local cut = assert(io.open("/work/after.txt", "w"))
  local seen = first:read("a")
  cut:close()
  first:close()
  return { removed, after_removal, renamed, written, seen, opened("/work/before.txt", "r") }
end)
add("removing", function()
  write_all("/work/gone.txt", "gone")
  return { os.remove("/work/gone.txt"), pack(os.remove("/work/gone.txt")) }
end)
add("renaming", function()
  write_all("/work/first.txt", "first")
  write_all("/work/second.txt", "second")
  local found = { os.rename("/work/first.txt", "/work/moved.txt"), os.rename("/work/moved.txt", "/work/second.txt") }
  return { found, read_all("/work/second.txt"), opened("/work/first.txt", "r"), opened("/work/moved.txt", "r") }
end)
add("removing_links_and_directories", function()
  return {
    pack(os.remove("/work/wlink")),
    read_all("/work/target.txt"),
    pack(os.remove("/work/wdirlink")),
    opened("/work/wdir", "r"),
    pack(os.remove("/work/empty")),
    pack(os.remove("/work/full")),
    pack(os.remove("/work/target.txt/")),
    pack(os.remove("/work/nowhere/")),
    pack(os.remove("/work/.")),
    pack(os.remove("/work/full/..")),
  }
end)
add("removing_a_directory_with_a_slash", function()
  local found = pack(os.remove("/work/empty2/"))
  os.remove("/work/empty2")
  return found
end)
add("renaming_directories", function()
  write_all("/work/file.txt", "file")
  return {
    pack(os.rename("/work/wdir", "/work/full")),
    pack(os.rename("/work/file.txt", "/work/wdir")),
    pack(os.rename("/work/wdir", "/work/file.txt")),
    pack(os.rename("/work/file.txt/", "/work/other.txt")),
    pack(os.rename("/work/wdir", "/work/wdir/inside")),
    pack(os.rename("/work/wdir/", "/work/renamed/")),
    pack(os.rename("/work/renamed", "/work/renamed")),
    pack(os.rename("/work/file.txt", "/work/file.txt")),
    pack(os.rename("/work/renamed", "/work/target.txt")),
    read_all("/work/file.txt"),
  }
end)
add("writing_through_a_link", function()
  write_all("/work/wlink2", "")
  os.remove("/work/wlink2")
  local file = assert(io.open("/work//full//../target.txt", "a"))
  file:write("+appended")
  file:close()
  return read_all("/work/target.txt")
end)
add("through_dangling_links", function()
  local found = { opened("/work/dangle", "w"), opened("/work/dangle-out", "w"), opened("/work/dangle-abs", "w") }
  found[#found + 1] = opened("/work/created.txt", "r")
  found[#found + 1] = pack(os.rename("/work/target.txt", "/work/dangle-abs"))
  found[#found + 1] = pack(os.remove("/work/dangle-out"))
  found[#found + 1] = pack(os.rename("/work/wdirlink2", "/work/moved-link"))
  found[#found + 1] = opened("/work/moved-link/inner.txt", "r")
  return found
end)
add("removing_a_link_with_a_slash", function() return pack(os.remove("/work/moved-link/")) end)
add("renaming_a_missing_file", function() return pack(os.rename("/work/missing.txt", "/work/x.txt")) end)
add("moving_across_mounts", function()
  write_all("/tmp/across.txt", "across")
  return { os.rename("/tmp/across.txt", "/work/arrived.txt"), read_all("/work/arrived.txt") }
end)
add("renaming_a_mount", function() return pack(os.rename("/work", "/tmp/work")) end)
add("removing_a_mount", function() return pack(os.remove("/tmp")) end)
add("removing_the_root", function() return pack(os.remove("/")) end)
add("temporary_file", function()
  local file, message = io.tmpfile()
  if file then
    file:write("temporary")
    file:seek("set", 0)
    local data = file:read("a")
    file:close()
    return data
  end
  return message
end)
add("processes", function() return { os.execute(), pack(os.execute("true")) } end)

add("printing_a_lot", function()
  for number = 0, 1999 do
    io.write(string.format("%05d %s\n", number, string.rep("-", 60)))
    if number % 500 == 0 then
      io.stderr:write("progress ", number, "\n")
    end
  end
  return "done"
end)

-- endings --------------------------------------------------------------------------------------------------------

local function recurse(depth)
  return 1 + recurse(depth + 1)
end

local function nested_metamethods()
  local endless = setmetatable({}, {})
  getmetatable(endless).__index = function(t, k) return t[k] end
  return endless.x
end

local function exhaust_memory()
  local held = {}
  while true do
    held[#held + 1] = string.rep("m", 64 * 1048576)
  end
end

local endings = {
  ["0"] = function() os.exit(0) end,
  ["3"] = function() os.exit(3) end,
  ["false"] = function() os.exit(false) end,
  ["error"] = function() error("stopped with a message") end,
  ["recursion"] = function() recurse(0) end,
  ["c stack"] = nested_metamethods,
  ["memory"] = exhaust_memory,
}

if ENDING == nil then
  for _, each in ipairs(checks) do
    check(each[1], each[2])
  end
  io.stdout:flush()
  endings["3"]()
end
check("ending " .. ENDING, endings[ENDING])
