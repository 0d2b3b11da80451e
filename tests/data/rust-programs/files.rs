//! A file tool as Rust programs use std::fs: each step prints what it returned. Its argument is the read-write
//! directory it works in (`/work`, by default); it also reads `/ro` (a read-only preopen) and moves files to `/out`.
//! What it is given there: `old.txt` (modified at 1,000,000,000 s), `links/` with `file.txt`, `dir/inside` and six
//! symlinks (`to-file`, `to-dir`, `dangling`, `escape` out of the preopen, `absolute`, `loop`); `/ro/given.txt`.
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn show<T: std::fmt::Debug>(label: &str, result: io::Result<T>) -> Option<T> {
    match result {
        Ok(value) => {
            println!("{label}: ok {value:?}");
            Some(value)
        }
        Err(error) => {
            println!("{label}: error {:?} {:?}", error.kind(), error.raw_os_error());
            None
        }
    }
}

fn names(dir: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let tag = if kind.is_symlink() { "@" } else if kind.is_dir() { "/" } else { "" };
        found.push(format!("{}{}", entry.file_name().to_string_lossy(), tag));
    }
    found.sort();
    Ok(found)
}

fn recent(time: io::Result<SystemTime>) -> io::Result<bool> {
    let time = time?;
    let now = SystemTime::now();
    let age = now.duration_since(time).unwrap_or(Duration::ZERO);
    Ok(age < Duration::from_secs(3600) && time > SystemTime::UNIX_EPOCH)
}

fn files(work: &Path) -> io::Result<()> {
    let notes = work.join("notes.txt");
    show("create", File::create(&notes).and_then(|mut f| f.write_all(b"first line\n")));
    show("read", fs::read_to_string(&notes));
    let append = OpenOptions::new().append(true).open(&notes);
    show("append", append.and_then(|mut f| f.write_all(b"second line\n")));
    show("read again", fs::read_to_string(&notes));
    let lines = File::open(&notes).map(|f| BufReader::new(f).lines().count());
    show("lines", lines);
    show("create_new existing", OpenOptions::new().write(true).create_new(true).open(&notes).map(|_| ()));
    show("write read-only", File::open(&notes).and_then(|mut f| f.write_all(b"x")));
    show("read write-only", OpenOptions::new().write(true).open(&notes).and_then(|mut f| f.read(&mut [0; 4])));
    show("truncate", OpenOptions::new().write(true).truncate(true).open(&notes).map(|_| ()));
    show("after truncate", fs::metadata(&notes).map(|m| m.len()));

    let big: Vec<u8> = (0..1_000_003u32).map(|n| (n * 7 % 251) as u8).collect();
    let blob = work.join("blob.bin");
    show("write 1 MB", fs::write(&blob, &big));
    show("read 1 MB back", fs::read(&blob).map(|b| b == big));
    show("copy", fs::copy(&blob, work.join("blob.copy")));

    let mut file = OpenOptions::new().read(true).write(true).open(&blob)?;
    show("seek end", file.seek(SeekFrom::End(-3)));
    let mut tail = [0u8; 8];
    show("read tail", file.read(&mut tail));
    show("seek current", file.seek(SeekFrom::Current(-10)));
    show("seek start", file.seek(SeekFrom::Start(10)));
    show("seek before start", file.seek(SeekFrom::Current(-100)));
    show("stream position", file.stream_position());
    show("set_len shrink", file.set_len(100));
    show("len", file.metadata().map(|m| m.len()));
    show("set_len grow", file.set_len(5000));
    show("write past end", file.seek(SeekFrom::Start(6000)).and_then(|_| file.write_all(b"end")));
    let mut all = Vec::new();
    show("read all", file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut all)));
    println!("hole zeros: {}", all[100..6000].iter().all(|b| *b == 0));
    show("sync_all", file.sync_all());
    show("sync_data", file.sync_data());
    drop(file);

    let meta = fs::metadata(&blob)?;
    println!("blob: file {} dir {} len {} readonly {}", meta.is_file(), meta.is_dir(), meta.len(), meta.permissions().readonly());
    show("modified recent", recent(meta.modified()));
    show("accessed recent", recent(meta.accessed()));
    show("created recent", recent(meta.created()));
    let old = fs::metadata(work.join("old.txt"))?;
    show("old modified", old.modified().map(|t| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).ok()));
    let mut perms = meta.permissions();
    perms.set_readonly(true);
    show("set_readonly", fs::set_permissions(&blob, perms));
    Ok(())
}

fn directories(work: &Path) -> io::Result<()> {
    let deep = work.join("a/b/c");
    show("create_dir_all", fs::create_dir_all(&deep));
    show("create_dir_all again", fs::create_dir_all(&deep));
    show("create_dir existing", fs::create_dir(&deep));
    show("create_dir no parent", fs::create_dir(work.join("x/y")));
    let many = work.join("many");
    fs::create_dir(&many)?;
    for n in 0..200 {
        fs::write(many.join(format!("entry-{n:04}-{}", "x".repeat(n % 40))), n.to_string())?;
    }
    fs::create_dir(many.join("sub"))?;
    let listed = names(&many)?;
    println!("many: {} entries, first {:?}, last {:?}", listed.len(), listed.first(), listed.last());
    show("read_dir a file", fs::read_dir(work.join("blob.bin")).map(|_| ()));
    show("read_dir missing", fs::read_dir(work.join("missing")).map(|_| ()));
    show("remove_dir not empty", fs::remove_dir(work.join("a")));
    show("remove_dir a file", fs::remove_dir(work.join("blob.copy")));
    show("remove_file a dir", fs::remove_file(work.join("a")));
    show("rename file", fs::rename(work.join("blob.copy"), work.join("a/b/moved.bin")));
    fs::write(work.join("target.txt"), "replaced")?;
    show("rename over file", fs::rename(work.join("notes.txt"), work.join("target.txt")));
    show("rename dir", fs::rename(work.join("a/b"), work.join("b2")));
    fs::create_dir(work.join("full"))?;
    fs::write(work.join("full/f"), "f")?;
    show("rename dir onto non-empty", fs::rename(work.join("b2"), work.join("full")));
    show("rename dir onto file", fs::rename(work.join("b2"), work.join("target.txt")));
    show("rename missing", fs::rename(work.join("nothing"), work.join("other")));
    remove_all("remove_dir_all many", &many);
    show("remove_file missing", fs::remove_file(work.join("missing")));
    show("hard_link", fs::hard_link(work.join("target.txt"), work.join("hard.txt")));
    show("hard_link len", fs::metadata(work.join("hard.txt")).map(|m| m.len()));
    show("listing", names(work));
    Ok(())
}

fn links(work: &Path) -> io::Result<()> {
    for name in ["to-file", "to-dir", "dangling", "escape", "absolute", "loop"] {
        let link = work.join("links").join(name);
        let kind = fs::symlink_metadata(&link).map(|m| (m.file_type().is_symlink(), m.is_dir()));
        show(&format!("{name} lstat"), kind);
        show(&format!("{name} read_link"), fs::read_link(&link));
        show(&format!("{name} stat"), fs::metadata(&link).map(|m| m.is_dir()));
        show(&format!("{name} read"), fs::read_to_string(&link));
    }
    show("write through link", fs::write(work.join("links/to-file"), "through the link\n"));
    show("target now", fs::read_to_string(work.join("links/file.txt")));
    show("read_dir through link", names(&work.join("links/to-dir")));
    show("remove link", fs::remove_file(work.join("links/to-dir")));
    show("canonicalize", fs::canonicalize(work.join("links/file.txt")));
    Ok(())
}

fn edges(work: &Path) -> io::Result<()> {
    let edge = work.join("edge");
    fs::create_dir(&edge)?;
    fs::write(edge.join("f"), "file")?;
    show("metadata file/", fs::metadata(edge.join("f/")).map(|m| m.is_file()));
    show("open file/", File::open(edge.join("f/")).map(|_| ()));
    show("create dir/", File::create(edge.join("newdir/")).map(|_| ()));
    show("create_dir trailing slash", fs::create_dir(edge.join("d/")));
    show("read_dir d/", names(&edge.join("d/")));
    show("long name 255", fs::write(edge.join("n".repeat(255)), "x"));
    show("long name 256", fs::write(edge.join("n".repeat(256)), "x"));
    show("unicode name", fs::write(edge.join("ünï ✓ 名前.txt"), "✓"));
    let mut deep = edge.join("deep");
    for level in 0..60 {
        deep.push(format!("level{level}"));
    }
    show("create_dir_all 60 deep", fs::create_dir_all(&deep));
    show("write at the bottom", fs::write(deep.join("bottom.txt"), "bottom"));
    show("copy a dir", fs::copy(edge.join("d"), edge.join("d-copy")));
    show("rename onto itself", fs::rename(edge.join("f"), edge.join("f")));
    show("rename into own child", fs::rename(edge.join("d"), edge.join("d/inner")));
    fs::create_dir(edge.join("tree"))?;
    fs::write(edge.join("tree/keep.txt"), "kept")?;
    show("not utf-8", fs::write(edge.join("latin1.txt"), b"caf\xe9").and_then(|_| fs::read_to_string(edge.join("latin1.txt"))));
    let mut open = File::open(edge.join("tree/keep.txt"))?;
    show("remove while open", fs::remove_file(edge.join("tree/keep.txt")));
    let mut kept = String::new();
    show("read the removed file", open.read_to_string(&mut kept).map(|_| kept.clone()));
    let mut appending = OpenOptions::new().append(true).read(true).open(edge.join("f"))?;
    show("seek then append", appending.seek(SeekFrom::Start(0)).and_then(|_| appending.write_all(b"+")));
    show("appended", fs::read_to_string(edge.join("f")));
    show("create+truncate through link", fs::write(work.join("links/to-file"), "short"));
    remove_all("remove_dir_all with links", &work.join("links"));
    show("entries' metadata", fs::read_dir(&edge).and_then(|entries| {
        let mut sizes = Vec::new();
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            sizes.push((entry.file_name().to_string_lossy().chars().take(12).collect::<String>(), meta.is_dir(), if meta.is_dir() { 0 } else { meta.len() }));
        }
        sizes.sort();
        Ok(sizes)
    }));
    show("remove_dir_all deep", fs::remove_dir_all(edge.join("deep")));
    Ok(())
}

fn across(work: &Path, ro: &Path, out: &Path) {
    let _ = fs::write(work.join("travel.txt"), "travels");
    let _ = fs::create_dir_all(work.join("travel-dir/inner"));
    show("rename to another preopen", fs::rename(work.join("travel.txt"), out.join("arrived.txt")));
    show("rename a dir to another preopen", fs::rename(work.join("travel-dir"), out.join("dir-arrived")));
    show("hard_link to another preopen", fs::hard_link(out.join("arrived.txt"), work.join("linked-back.txt")));
    show("rename into ro", fs::rename(out.join("arrived.txt"), ro.join("stolen.txt")));
    show("rename out of ro", fs::rename(ro.join("given.txt"), out.join("given.txt")));
    show("hard_link out of ro", fs::hard_link(ro.join("given.txt"), out.join("given-link.txt")));
    show("copy out of ro", fs::copy(ro.join("given.txt"), out.join("given-copy.txt")));
    show("out listing", names(out));
}

fn remove_all(label: &str, path: &Path) {
    let first = show(label, fs::remove_dir_all(path));
    let mut tries = 1;
    while first.is_none() && path.exists() && tries < 100 {
        let _ = fs::remove_dir_all(path);
        tries += 1;
    }
    println!("{label}: gone {}", !path.exists());
}

fn read_only(ro: &Path) {
    show("ro read", fs::read_to_string(ro.join("given.txt")));
    show("ro write", fs::write(ro.join("given.txt"), "changed"));
    show("ro append", OpenOptions::new().append(true).open(ro.join("given.txt")).map(|_| ()));
    show("ro create", fs::write(ro.join("new.txt"), "new"));
    show("ro mkdir", fs::create_dir(ro.join("sub")));
    show("ro remove", fs::remove_file(ro.join("given.txt")));
    show("ro rename", fs::rename(ro.join("given.txt"), ro.join("renamed.txt")));
    show("ro set_len", File::open(ro.join("given.txt")).and_then(|f| f.set_len(0)));
    show("ro listing", names(ro));
    show("ro metadata", fs::metadata(ro.join("given.txt")).map(|m| (m.len(), m.permissions().readonly())));
}

fn escapes(work: &Path) {
    show("outside the preopen", fs::read_to_string("/etc/passwd"));
    show("dot-dot out", fs::read_to_string(work.join("../../etc/passwd")));
    show("relative", fs::read_to_string("relative.txt"));
    show("metadata of root", fs::metadata(work).map(|m| m.is_dir()));
    show("root listing", names(Path::new("/")));
    show("create in /", fs::write("/new.txt", "x"));
}

fn main() {
    let work = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/work".into()));
    if let Err(error) = files(&work).and_then(|_| directories(&work)).and_then(|_| links(&work)) {
        eprintln!("stopped: {error}");
        std::process::exit(2);
    }
    if let Err(error) = edges(&work) {
        eprintln!("edges stopped: {error}");
    }
    read_only(Path::new("/ro"));
    across(&work, Path::new("/ro"), Path::new("/out"));
    escapes(&work);
    println!("done");
}
