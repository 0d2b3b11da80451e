//! A command-line program as Rust's std writes them. Each argument is a step, run in order: `env`, `streams`,
//! `clocks`, `random`, `unsupported`, then at most one ending: `exit N`, `fail` (main returns an error), `panic`,
//! `abort`, `alloc MIB` (holds MIB mebibytes, then asks for 1 GiB) or `recurse` (until the stack overflows).
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{self, BufRead, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn environment(args: &[String]) {
    println!("args {:?}", args);
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("vars {:?}", vars);
    println!("var GREETING {:?}", std::env::var("GREETING"));
    println!("var MISSING {:?}", std::env::var("MISSING"));
    println!("var_os EMPTY {:?}", std::env::var_os("EMPTY"));
    match std::env::current_dir() {
        Ok(dir) => println!("current_dir {:?}", dir),
        Err(error) => println!("current_dir error {:?}", error.kind()),
    }
    println!("consts {:?} {:?} {:?}", std::env::consts::OS, std::env::consts::ARCH, std::env::consts::FAMILY);
}

fn streams() -> io::Result<()> {
    let stdin = io::stdin();
    let (mut lines, mut bytes, mut sum) = (0usize, 0usize, 0u64);
    let mut longest = String::new();
    for line in stdin.lock().lines() {
        let line = line?;
        lines += 1;
        bytes += line.len() + 1;
        sum = line.bytes().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(b as u64));
        if line.chars().count() > longest.chars().count() {
            longest = line;
        }
    }
    let shown: String = longest.chars().take(30).collect();
    println!("stdin: {lines} lines, {bytes} bytes, sum {sum}, longest {shown:?}");
    let mut rest = Vec::new();
    println!("read after EOF: {:?}", io::stdin().read_to_end(&mut rest));
    let out = io::stdout();
    let mut out = out.lock();
    for n in 0..4000 {
        writeln!(out, "line {n:05} {}", "abcdefghij".repeat(n % 7))?;
    }
    write!(out, "partial ")?;
    out.flush()?;
    writeln!(out, "completed")?;
    let err = io::stderr();
    let mut err = err.lock();
    for n in 0..2000 {
        writeln!(err, "warning {n}: {}", "é".repeat(n % 5))?;
    }
    Ok(())
}

fn clocks() {
    let now = SystemTime::now();
    let since = now.duration_since(UNIX_EPOCH).expect("after 1970");
    println!("system time after 2020: {}", since.as_secs() > 1_577_836_800);
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let slept = start.elapsed();
    println!("slept 50 ms: {}", slept >= Duration::from_millis(50) && slept < Duration::from_secs(5));
    std::thread::sleep(Duration::ZERO);
    let (a, b) = (Instant::now(), Instant::now());
    println!("monotonic: {}", b >= a);
    println!("system time goes on: {}", SystemTime::now().duration_since(now).is_ok());
}

fn randomness() {
    let (first, second) = (RandomState::new(), RandomState::new());
    let hash = |state: &RandomState| {
        let mut hasher = state.build_hasher();
        "the same key".hash(&mut hasher);
        hasher.finish()
    };
    println!("one state hashes alike: {}", hash(&first) == hash(&first));
    println!("two states differ: {}", hash(&first) != hash(&second));
    let map: HashMap<u64, u64> = (0..1000).map(|n| (n, n * n)).collect();
    println!("map of {} sums {}", map.len(), map.values().sum::<u64>());
}

fn unsupported() {
    println!("spawn: {:?}", std::thread::Builder::new().spawn(|| 1).map(|_| ()).map_err(|e| e.kind()));
    println!("connect: {:?}", std::net::TcpStream::connect("127.0.0.1:9").map(|_| ()).map_err(|e| e.kind()));
    println!("command: {:?}", std::process::Command::new("ls").status().map_err(|e| e.kind()));
    std::thread::yield_now();
    println!("available_parallelism: {:?}", std::thread::available_parallelism().map_err(|e| e.kind()));
}

#[inline(never)] // so that its abort is placed in it
fn allocate(mebibytes: usize) {
    let mut attempt: Vec<u8> = Vec::new();
    println!("try_reserve 3 GiB: {:?}", attempt.try_reserve(3 << 30).map_err(|_| "refused"));
    let mut held: Vec<Vec<u8>> = Vec::new();
    for n in 0..mebibytes {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() {
            println!("try_reserve failed after {n} MiB");
            break;
        }
        block.resize(1 << 20, n as u8);
        held.push(block);
    }
    println!("held {} MiB", held.iter().map(Vec::len).sum::<usize>() >> 20);
    drop(held);
    println!("after freeing, 8 MiB: {}", vec![1u8; 8 << 20].len() >> 20);
    io::stdout().flush().unwrap();
    let too_much = vec![0u8; 1 << 30];
    println!("never printed {}", too_much.len());
}

#[inline(never)]
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(depth % 256) as usize] = depth as u8;
    let mut local = *pad;
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1, &mut local) + local[3] as u64
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let mut steps = args.iter().skip(1);
    while let Some(step) = steps.next() {
        let mut number = || steps.next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
        match step.as_str() {
            "env" => environment(&args),
            "streams" => streams().map_err(|error| error.to_string())?,
            "clocks" => clocks(),
            "random" => randomness(),
            "unsupported" => unsupported(),
            "exit" => {
                let code = number();
                print!("exiting with {code} ");
                io::stdout().flush().unwrap();
                std::process::exit(code as i32)
            }
            "fail" => return Err(format!("failed after {} steps", args.len() - 2)),
            "panic" => {
                println!("about to panic");
                print!("never flushed ");
                let value: Option<u32> = "not a number".parse().ok();
                panic!("no number: {}", value.unwrap_or(7));
            }
            "abort" => {
                eprintln!("aborting");
                std::process::abort()
            }
            "alloc" => allocate(number() as usize),
            "recurse" => println!("{}", recurse(0, &mut [0u8; 256])),
            other => {
                eprintln!("cli: unknown step {other:?}");
                std::process::exit(64);
            }
        }
    }
    Ok(())
}
