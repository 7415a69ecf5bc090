#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// Opens an input for reading and returns its descriptor and `fstat`. Only a regular file (or a
/// link to one) is an input: a folder, FIFO, socket or device is refused without reading it (the
/// open does not wait for a FIFO's writer). The caller closes the descriptor.
/// - Throws: `ImgConvError` naming the path: `.notFound` (66) when it does not exist,
///   `.unreadable` (66) when it cannot be opened (permissions, a folder in the path) or is not a
///   regular file, `.io` (74) for other failures.
public func openInputFile(_ path: String) throws -> (fd: Int32, stat: stat) {
    // withCString, not the implicit conversion (which copies the path into a new array).
    let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
    guard fd >= 0 else {
        let code = errno
        throw ImgConvError(inputErrorCode(code), path: path, "cannot open: \(errnoText(code))")
    }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        let code = errno
        close(fd)
        throw ImgConvError(.io, path: path, "cannot stat: \(errnoText(code))")
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        close(fd)
        throw ImgConvError(.unreadable, path: path, "is \(fileKindName(st.st_mode)), not a regular file")
    }
    return (fd, st)
}

/// The error code of a failed `open` of an input: a missing file is `.notFound`, one that exists
/// but cannot be opened `.unreadable` (both exit 66, EX_NOINPUT); out of memory or descriptors
/// `.resources` (71); anything else is `.io` (74).
public func inputErrorCode(_ code: Int32) -> ImgConvError.Code {
    switch code {
    case ENOENT: return .notFound
    case EACCES, EPERM, EISDIR, ENOTDIR, ELOOP, ENAMETOOLONG, ENXIO, ENODEV: return .unreadable
    case ENOMEM, EMFILE, ENFILE: return .resources
    default: return .io
    }
}

/// The error code of a failed system call on an output or a folder: out of memory or
/// descriptors is `.resources` (71, the host's fault), anything else `.io` (74).
public func systemErrorCode(_ code: Int32) -> ImgConvError.Code {
    code == ENOMEM || code == EMFILE || code == ENFILE ? .resources : .io
}

/// What a file of this `st_mode` is, for messages: "a folder", "a FIFO", ...
public func fileKindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "a regular file"
    case S_IFDIR: return "a folder"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFLNK: return "a symbolic link"
    default: return "a special file"
    }
}

/// An input file opened once (`openInputFile`'s checks) and read in bounded pieces: what a
/// format needs is read from its first bytes before anything more is read, so a file's size
/// costs memory only once its header has shown the size plausible.
public final class InputFile: Sendable {
    public let path: String
    public let fd: Int32
    /// The size `fstat` gave at open.
    public let size: Int

    /// - Throws: as `openInputFile`.
    public init(_ path: String) throws {
        self.path = path
        let (fd, st) = try openInputFile(path)
        self.fd = fd
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Asks the kernel to start reading the whole file into the page cache, without waiting
    /// (`POSIX_FADV_WILLNEED`); a hint: nothing fails if it is not taken.
    public func willNeed() {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED)
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file) and appends them to `bytes`.
    /// - Throws: `.io` naming the path.
    public func read(_ count: Int, at offset: Int, appendingTo bytes: inout [UInt8]) throws {
        try reserve(bytes.count + count, reading: count)
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        let (done, failure) = bytes.withUnsafeMutableBytes { readFully(into: $0.baseAddress! + start, count, at: offset) }
        if failure != 0 { throw readError(failure) }
        if done < count { bytes.removeSubrange((start + done)...) }
    }

    /// `pread`s until `count` bytes are read or the file ends: the bytes read, and 0 or the
    /// `errno` of a failed read.
    private func readFully(into buffer: UnsafeMutableRawPointer, _ count: Int, at offset: Int) -> (Int, Int32) {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                return (done, errno)
            }
            if n == 0 { break }
            done += n
        }
        return (done, 0)
    }

    /// Checks `total` bytes against the memory ceiling before `count` of them are read.
    private func reserve(_ total: Int, reading count: Int) throws {
        do {
            try MemoryCeiling.reserve(total, for: "reading the file (\(count) bytes)")
        } catch let e as ImgConvError {
            throw e.at(path)
        }
    }

    private func readError(_ code: Int32) -> ImgConvError {
        ImgConvError(code == ENOMEM ? .resources : .io, path: path, "read failed: \(errnoText(code))")
    }

    /// The first `count` bytes (fewer for a shorter file), read straight into a new array (no
    /// zero-fill first: this runs once per file).
    public func prefix(_ count: Int) throws -> [UInt8] {
        let want = min(count, size)
        try reserve(want, reading: want)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: want) { buf, initialized in
            guard let base = buf.baseAddress else { return }   // nothing to read
            (initialized, failure) = readFully(into: base, want, at: 0)
        }
        if failure != 0 { throw readError(failure) }
        return bytes
    }

    /// The whole file, given its first bytes already read (`head`); refused without reading
    /// when it is larger than `maxBytes` (`why` ends the message: "more than ... can need").
    /// - Throws: `.limitExceeded` for a file over `maxBytes`, `.io` when reading fails.
    public func readAll(after head: [UInt8] = [], maxBytes: Int = Int.max, why: @autoclosure () -> String = "") throws -> [UInt8] {
        guard size <= maxBytes else {
            let reason = why()
            throw ImgConvError(.limitExceeded, path: path,
                               "file is \(size) bytes, " + (reason.isEmpty ? "over the limit of \(maxBytes)" : reason))
        }
        var bytes = head
        if bytes.count < size {
            bytes.reserveCapacity(size)
            try read(size - bytes.count, at: bytes.count, appendingTo: &bytes)
        }
        return bytes
    }

    /// Calls `body` with consecutive pieces of the file of at most `chunk` bytes, read into one
    /// reused buffer (memory stays at `chunk` whatever the file's size).
    /// - Throws: `.io` when reading fails, or what `body` throws.
    public func forEachChunk(_ chunk: Int = 1 << 20, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(chunk)
        var offset = 0
        while true {
            buffer.removeAll(keepingCapacity: true)
            try read(chunk, at: offset, appendingTo: &buffer)
            if buffer.isEmpty { return }
            try body(buffer[...])
            offset += buffer.count
        }
    }
}

/// Reads a whole file into memory with one open and as few reads as its size allows.
/// - Throws: `ImgConvError` as `openInputFile`, `.limitExceeded` for a file over `maxBytes`,
///   `.io` when reading fails.
public func readFile(_ path: String, maxBytes: Int = Int.max) throws -> [UInt8] {
    try InputFile(path).readAll(maxBytes: maxBytes)
}

/// Reads at most `count` bytes from the start of a file.
public func readFilePrefix(_ path: String, count: Int) throws -> (bytes: [UInt8], fileSize: Int) {
    let input = try InputFile(path)
    return (try input.prefix(count), input.size)
}

/// Calls `body` with each line of a text file (LF, CRLF or a lone CR ends one) and its number
/// from 1, reading it in pieces: memory stays bounded by `maxLineBytes` whatever the file's size.
/// - Throws: `.corruptInput` naming `path:line` for a NUL byte, a line that is not UTF-8 or is
///   longer than `maxLineBytes`; what `body` throws.
public func forEachLine(ofFile path: String, maxLineBytes: Int = 1 << 16, _ body: (String, Int) throws -> Void) throws {
    let input = try InputFile(path)
    var line: [UInt8] = []
    var number = 1
    var afterCR = false
    func end() throws {
        guard let text = String(validating: line, as: UTF8.self) else {
            throw ImgConvError(.corruptInput, path: "\(path):\(number)", "is not UTF-8 text")
        }
        try body(text, number)
        line.removeAll(keepingCapacity: true)
        number += 1
    }
    try input.forEachChunk { chunk in
        for b in chunk {
            if afterCR {
                afterCR = false
                if b == 0x0A { continue }
            }
            switch b {
            case 0x0A: try end()
            case 0x0D: try end(); afterCR = true
            case 0:
                throw ImgConvError(.corruptInput, path: "\(path):\(number)", "holds a NUL byte: not a text file")
            default:
                guard line.count < maxLineBytes else {
                    throw ImgConvError(.corruptInput, path: "\(path):\(number)", "line is longer than \(maxLineBytes) bytes: not a list of names")
                }
                line.append(b)
            }
        }
    }
    if !line.isEmpty { try end() }
}

/// An output file written under a temporary name in the target's folder and renamed over the
/// target only by `commit()`. Until then the target (and any earlier file there) is untouched;
/// `abort()` (or an interrupting signal, see `TemporaryFiles`) removes the temporary file.
///
/// Writes are buffered; `patch(at:)` rewrites bytes already written (headers whose counts are known
/// only at the end). A large output (`directIO`: a tensor file) is written with direct I/O
/// where its file system takes it (`DirectOutput`).
public final class AtomicOutputFile {
    public let targetPath: String
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes handed to `write` so far (the logical file size).
    public private(set) var offset: Int = 0
    private var closed = false
    private var direct: DirectOutput?

    /// - Parameter directIO: write the file's whole stages with direct I/O (`DirectOutput`) when
    ///   its file system takes it: for large sequential outputs, the tensors.
    /// - Throws: `ImgConvError` `.io` when the folder cannot take a new file.
    public init(target: String, directIO: Bool = false) throws {
        targetPath = target
        (fd, temporaryPath) = try createTemporaryFile(for: target)
        if directIO { direct = DirectOutput(path: temporaryPath, fd: fd) }
    }

    deinit {
        if !closed { abort() }
    }

    /// Whether whole stages are written with direct I/O.
    public var writesDirect: Bool { direct != nil }

    /// Pieces this large are written where they lie (after what is buffered), not copied.
    private let directLimit = 64 << 10

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if let direct {
            let error = direct.append(bytes)
            guard error == 0 else { throw ioError(error) }
            offset += bytes.count
            return
        }
        if bytes.count >= directLimit {
            try flush()
            try writeAll(bytes)
            offset += bytes.count
            return
        }
        if buffer.count + bytes.count > bufferLimit { try flush() }
        // The buffer's whole size at once: grown by doubling, each step's copy touched new pages
        // (a third of a run's page faults on a set of small images).
        if buffer.count + bytes.count > buffer.capacity { buffer.reserveCapacity(bufferLimit) }
        buffer.append(contentsOf: bytes)
        offset += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Overwrites bytes already written at `position`.
    public func patch(_ bytes: [UInt8], at position: Int) throws {
        precondition(position + bytes.count <= offset, "patch beyond written data")
        if let direct {
            let error = bytes.withUnsafeBytes { direct.patch($0, at: position) }
            guard error == 0 else { throw ioError(error) }
            return
        }
        try flush()
        let error = bytes.withUnsafeBytes { pwriteAll(fd, $0, at: position) }
        guard error == 0 else { throw ioError(error) }
    }

    public func flush() throws {
        if let direct {
            let error = direct.flush()
            guard error == 0 else { throw ioError(error) }
            return
        }
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private var written = 0
    /// Bytes per `pwrite` at most. One call of several MiB from memory-mapped pages (a merge's
    /// block of a part) cost the kernel several times what the same bytes cost in calls of 1-2
    /// MiB (Linux 6.18, ext4: merging four 196 MB parts in 8 MiB calls took 1.3-1.6 s of system
    /// time, in 1 MiB calls 0.25 s).
    static let pieceLimit = 1 << 20
    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, min(bytes.count - done, Self.pieceLimit), off_t(written))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(errno)
            }
            done += n
            written += n
        }
        writeback.advance(fd: fd, written: written)
    }

    private var writeback = EarlyWriteback()

    private func ioError(_ code: Int32) -> ImgConvError {
        let what = code == ENOSPC ? "disk full" : code == EFBIG ? "file too large" : errnoText(code)
        return ImgConvError(.io, path: targetPath, "write failed: \(what)")
    }

    /// Starts (without waiting for) the disk write of everything written so far, so that the
    /// sync of `commit` waits less: files finished one after another are then written to disk
    /// together. A hint: a failure shows in the sync.
    public func startWriteback() throws {
        try flush()
        _ = imc_start_writeback(fd, 0, 0)   // 0 bytes: to the end of the file
    }

    /// Flushes, syncs and renames the temporary file over the target.
    /// - Parameter sync: `fsync` before the rename (skip it for many small files whose batch can be
    ///   redone, such as `export`'s PNGs).
    public func commit(sync: Bool = true) throws {
        try flush()
        if let direct {
            let error = direct.close()
            self.direct = nil
            guard error == 0 else { abort(); throw ioError(error) }
        }
        if sync && fsync(fd) != 0 { let e = errno; abort(); throw ioError(e) }
        close(fd)
        closed = true
        try moveIntoPlace(temporaryPath, targetPath)
    }

    /// Removes the temporary file; the target is left as it was.
    public func abort() {
        guard !closed else { return }
        _ = direct?.close()   // no stage write in flight on the descriptor closed next
        direct = nil
        close(fd)
        closed = true
        unlink(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
    }
}

/// Refuses an output file target that a finished output must not replace: an existing folder,
/// FIFO, socket or device (renaming a file over `/dev/null` would replace the device node), a
/// symbolic link to one, or a link to a process's descriptor (`/dev/stdout`, whatever stdout is).
/// A missing target, a regular file, and a link to a regular file or to nothing pass: such a link
/// is itself replaced by the new file (the rename replaces the link; what it pointed to is
/// untouched).
/// - Throws: `ImgConvError` `.io` (74) naming the target and what it is.
public func checkOutputFileTarget(_ target: String) throws {
    var st = stat()
    guard lstat(target, &st) == 0 else { return }   // missing (or unreachable: creating fails later)
    switch st.st_mode & S_IFMT {
    case S_IFREG:
        return
    case S_IFLNK:
        if let descriptor = descriptorLinkText(target) {
            throw ImgConvError(.io, path: target, "is a symbolic link to a process's descriptor ('\(descriptor)'), not to a file: refusing to replace it")
        }
        var pointed = stat()
        guard stat(target, &pointed) == 0, (pointed.st_mode & S_IFMT) != S_IFREG else { return }
        throw ImgConvError(.io, path: target, "is a symbolic link to \(fileKindName(pointed.st_mode)), not to a regular file: refusing to replace it")
    default:
        throw ImgConvError(.io, path: target, "is \(fileKindName(st.st_mode)), not a regular file: refusing to replace it")
    }
}

/// The text of the symbolic link `path` when it names a descriptor of a process, a file in a
/// folder that resolves into `/proc` (`/dev/stdout` -> `/proc/self/fd/1`, `/dev/fd/1`): such a
/// link stands for a stream, whatever file the descriptor happens to be, and is part of the
/// system; nil for any other link.
func descriptorLinkText(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let linkFolder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let named = text.hasPrefix("/") ? text : linkFolder + "/" + text
    let folder = named.lastIndex(of: "/").map { String(named[..<$0]) } ?? "."
    guard let real = realpath(folder.isEmpty ? "/" : folder, nil) else { return nil }
    defer { free(real) }
    let resolved = String(cString: real)
    return resolved == "/proc" || resolved.hasPrefix("/proc/") ? text : nil
}

/// Refuses an output folder target (`to-npy`, `to-idx`) that exists and is not a folder (or a
/// link to one): the files would be written beside it, or over it.
/// - Throws: `ImgConvError` `.io` (74) naming the target and what it is.
public func checkOutputFolderTarget(_ target: String) throws {
    var st = stat()
    guard stat(target, &st) == 0 else { return }   // missing: created when the output starts
    guard (st.st_mode & S_IFMT) == S_IFDIR else {
        throw ImgConvError(.io, path: target, "is \(fileKindName(st.st_mode)), not a folder: refusing to write into it")
    }
}

/// Creates a folder and the missing folders above it (as `mkdir -p`), for the folder outputs
/// (`to-npy`, `to-idx`, `export`), as torchvision's `MNIST/raw` layout needs.
/// - Returns: the folders it made, outermost first (`removeEmptyFolders` takes them back when
///   the run fails).
/// - Throws: `.io` naming the first folder that cannot be made, or the path that is in the way.
@discardableResult
public func createFolders(_ path: String) throws -> [String] {
    var st = stat()
    if stat(path, &st) == 0 {
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw ImgConvError(.io, path: path, "is \(fileKindName(st.st_mode)), not a folder")
        }
        return []
    }
    let parent = parentFolder(path)
    var made: [String] = []
    if parent != path && !parent.isEmpty { made = try createFolders(parent) }
    if mkdir(path, 0o755) != 0 {
        guard errno == EEXIST else {
            throw ImgConvError(systemErrorCode(errno), path: path, "cannot create the output folder: \(errnoText(errno))")
        }
        return made
    }
    return made + [path]
}

/// Removes the folders `createFolders` made, innermost first, where they are still empty (a
/// failed run leaves no empty output folder behind; anything put there since stays).
public func removeEmptyFolders(_ made: [String]) {
    for path in made.reversed() { _ = rmdir(path) }
}

/// Creates an empty file `.<name>.imgconv-<pid>-<n>.tmp` beside `target` and registers it with
/// `TemporaryFiles`; returns its open descriptor and path.
/// - Throws: `ImgConvError` `.io` when the target is not a file that may be replaced
///   (`checkOutputFileTarget`), or the folder is missing or cannot take a new file.
private func createTemporaryFile(for target: String) throws -> (Int32, String) {
    try checkOutputFileTarget(target)
    let slash = target.lastIndex(of: "/")
    let dir = slash.map { String(target[..<$0]) } ?? "."
    let base = slash.map { String(target[target.index(after: $0)...]) } ?? target
    var st = stat()
    if stat(dir.isEmpty ? "/" : dir, &st) != 0 {
        throw ImgConvError(.io, path: target, "output folder does not exist (\(errnoText(errno))): create it first (mkdir -p '\(dir)')")
    }
    guard (st.st_mode & S_IFMT) == S_IFDIR else {
        throw ImgConvError(.io, path: target, "'\(dir)' is not a folder")
    }
    removeStaleTemporaries(dir: dir.isEmpty ? "/" : dir, base: base)
    var created: Int32 = -1
    var name = ""
    for attempt in 0..<100 {
        name = (dir.isEmpty ? "" : dir + "/") + ".\(base).imgconv-\(getpid())-\(attempt).tmp"
        // O_EXCL: never reuse or follow a file someone planted under this name.
        created = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if created >= 0 || errno != EEXIST { break }
    }
    guard created >= 0 else {
        let code = errno
        throw ImgConvError(systemErrorCode(code), path: target, "cannot create a file in the output folder: \(errnoText(code))")
    }
    TemporaryFiles.register(name)
    return (created, name)
}

/// Renames a finished temporary file over its target (removing it if that fails) and forgets it.
/// The target is checked again just before: something may have been put there while the output
/// was written.
private func moveIntoPlace(_ temporaryPath: String, _ targetPath: String) throws {
    defer { TemporaryFiles.unregister(temporaryPath) }
    do {
        try checkOutputFileTarget(targetPath)
    } catch {
        unlink(temporaryPath)
        throw error
    }
    TemporaryFiles.beginCommit()
    if rename(temporaryPath, targetPath) != 0 {
        let e = errno
        unlink(temporaryPath)
        throw ImgConvError(.io, path: targetPath, "cannot move the finished file into place: \(errnoText(e))")
    }
}

/// Removes `.<base>.imgconv-<pid>-<n>.tmp` files in `dir` left by processes that no longer run
/// (a SIGKILL leaves its temporary behind); those of live processes, and every other file, stay.
func removeStaleTemporaries(dir: String, base: String) {
    for name in staleTemporaries(dir: dir, prefix: ".\(base).imgconv-") {
        let path = (dir.hasSuffix("/") ? dir : dir + "/") + name
        var st = stat()
        // Only regular files and folders (a folder output's): never follow or remove a link
        // planted under such a name.
        guard lstat(path, &st) == 0 else { continue }
        if (st.st_mode & S_IFMT) == S_IFREG { unlink(path) }
        if (st.st_mode & S_IFMT) == S_IFDIR { _ = imc_remove_tree(path) }
    }
}

/// The names of the `.<name>.imgconv-<pid>-<n>.tmp` entries in `dir` (those starting with
/// `prefix`) whose process no longer runs, sorted.
public func staleTemporaries(dir: String, prefix: String = ".") -> [String] {
    guard let names = try? listAllEntries(dir) else { return [] }
    var stale: [String] = []
    for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
        guard let marker = name.ranges(of: ".imgconv-").last else { continue }
        let middle = name[marker.upperBound...].dropLast(4)   // "<pid>-<n>"
        let parts = middle.split(separator: "-")
        guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, Int(parts[1]) != nil, pid != getpid() else { continue }
        if kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
    }
    return stale.sorted()
}

/// Every entry of a folder, hidden ones included.
private func listAllEntries(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw ImgConvError(.io, path: path, "cannot list folder") }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        names.append(direntName(entry))
    }
    return names
}

/// The name of a `readdir` entry, read in place up to its NUL. Copying `d_name` (a 256-byte
/// tuple) would read past the entry: glibc packs entries, and the last one in its buffer can be
/// shorter than `struct dirent` (AddressSanitizer reports a heap-buffer-overflow).
public func direntName(_ entry: UnsafePointer<dirent>) -> String {
    String(cString: direntNameBytes(entry))
}

private func direntNameBytes(_ entry: UnsafePointer<dirent>) -> UnsafePointer<CChar> {
    (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!).assumingMemoryBound(to: CChar.self)
}

/// A folder entry's name (a C string) and whether its bytes are valid UTF-8. When they are not, the name
/// shows every byte outside printable ASCII as `\xNN` (for messages and the manifest's skipped
/// list; no file has that name).
func checkedName(_ cName: UnsafePointer<CChar>) -> (name: String, valid: Bool) {
    if let name = String(validatingCString: cName) { return (name, true) }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(cName).assumingMemoryBound(to: UInt8.self), count: strlen(cName))
    let shown = bytes.map { b in
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + (b < 0x10 ? "0" : "") + String(b, radix: 16, uppercase: true)
    }
    return (shown.joined(), false)
}

/// A temporary path beside `targetPath` for output that a library writes itself (HDF5 opens
/// files by name): the same naming and clean-up as `AtomicOutputFile` (an interrupting signal
/// removes it), and `commit()` syncs it and renames it over the target.
public final class TemporaryOutputPath {
    public let targetPath: String
    /// An empty file, created exclusively; the library may truncate and rewrite it.
    public let temporaryPath: String
    private var done = false

    /// - Throws: `ImgConvError` `.io` when the folder cannot take a new file.
    public init(target: String) throws {
        targetPath = target
        let (fd, name) = try createTemporaryFile(for: target)
        close(fd)
        temporaryPath = name
    }

    deinit {
        abort()
        closeWriteback()
    }

    /// A descriptor of the temporary file of our own (the library writes through its own), for
    /// `startWriteback`; -1 until then, or when it could not be opened.
    private var writebackFD: Int32 = -1
    private var writebackTried = false
    private var writeback = EarlyWriteback()

    /// Starts (without waiting for) the disk write of each full 8 MiB the library has written so
    /// far, as `AtomicOutputFile` does for its own writes: the final sync then waits only for the
    /// last few MiB. A hint: nothing happens when the file cannot be opened for it.
    public func startWriteback() {
        if !writebackTried {
            writebackTried = true
            writebackFD = open(temporaryPath, O_RDONLY | O_CLOEXEC)
        }
        guard writebackFD >= 0 else { return }
        var st = stat()
        guard fstat(writebackFD, &st) == 0 else { return }
        writeback.advance(fd: writebackFD, written: Int(st.st_size))
    }

    private func closeWriteback() {
        if writebackFD >= 0 { close(writebackFD) }
        writebackFD = -1
    }

    /// Syncs the finished file (closed by its writer) and renames it over the target.
    /// - Throws: `.io` naming the target; the temporary file is then removed.
    public func commit() throws {
        precondition(!done, "commit after commit or abort")
        closeWriteback()
        let fd = open(temporaryPath, O_RDONLY | O_CLOEXEC)
        if fd < 0 || fsync(fd) != 0 {
            let e = errno
            if fd >= 0 { close(fd) }
            abort()
            throw ImgConvError(.io, path: targetPath, "cannot sync the finished file: \(errnoText(e))")
        }
        close(fd)
        done = true
        try moveIntoPlace(temporaryPath, targetPath)
    }

    /// Removes the temporary file; the target is left as it was.
    public func abort() {
        guard !done else { return }
        done = true
        closeWriteback()
        unlink(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
    }
}

/// Starts (without waiting for) the disk write of each full 8 MiB of a file being written
/// (`sync_file_range`), so that the final `fsync` waits only for the last few MiB instead of the
/// whole file; on a file of hundreds of MB that wait was a quarter of the run.
struct EarlyWriteback {
    static let step = 8 << 20
    /// Where the kernel was last asked to start writing back.
    private var start = 0

    /// `written`: the file's size so far.
    mutating func advance(fd: Int32, written: Int) {
        let end = written - written % Self.step
        guard end > start else { return }
        _ = imc_start_writeback(fd, Int64(start), Int64(end - start))
        start = end
    }
}

/// Writes a small file atomically (temporary file, then rename).
public func writeFileAtomically(_ path: String, _ bytes: [UInt8], sync: Bool = true) throws {
    let out = try AtomicOutputFile(target: path)
    do {
        try out.write(bytes)
        try out.commit(sync: sync)
    } catch {
        out.abort()
        throw error
    }
}

/// Whether `path` is a folder (or a symbolic link to one).
public func isFolder(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// The folder a path is in (`.` for a bare name, `/` for a name at the root).
public func parentFolder(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// The last name of a path (the whole path when it has no `/`).
public func lastPathComponent(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
}

/// The directory entry a path names: its folder with every link resolved, and its last name (not
/// resolved: a rename replaces the entry, a link included). Nil when the folder does not exist.
public func directoryEntry(_ path: String) -> String? {
    let name = lastPathComponent(path)
    guard !name.isEmpty, let resolved = realpath(parentFolder(path), nil) else { return nil }
    defer { free(resolved) }
    let base = String(cString: resolved)
    return (base == "/" ? "" : base) + "/" + name
}

/// Refuses a run whose outputs would replace one of its inputs (`to-npz ROOT ROOT/cat/000.png`,
/// a `--list` CSV or `--classes-file` as the output, a container converted onto itself): outputs
/// are renamed into place, so the input's entry would be gone. Compared as directory entries, so
/// another spelling of the same path (`./`, `..`, a linked folder) is caught too.
/// - Parameters:
///   - outputs: the files the run would rename into place.
///   - inputs: the files it reads, with what each is (`image`, `--list CSV`...).
/// - Throws: `.invalidArgument` naming the output and the input, before any work.
public func refuseOutputsAmongInputs<S: Sequence>(_ outputs: [String], inputs: S) throws where S.Element == (path: String, role: String) {
    var byName: [String: [String]] = [:]
    for output in outputs {
        guard let entry = directoryEntry(output) else { continue }
        byName[lastPathComponent(entry), default: []].append(entry)
    }
    guard !byName.isEmpty else { return }
    var resolvedFolders: [Substring: String?] = [:]   // the same folder's inputs resolve once
    for (path, role) in inputs {
        let name = lastPathComponent(path)
        guard let candidates = byName[name] else { continue }
        let folder = path.lastIndex(of: "/").map { path[..<$0] } ?? "."
        let entry: String?
        if let known = resolvedFolders[folder] {
            entry = known.map { $0 + "/" + name }
        } else {
            let resolved = directoryEntry(path)
            resolvedFolders[folder] = resolved.map { String($0.dropLast(name.count + 1)) }
            entry = resolved
        }
        if let entry, candidates.contains(entry) {
            throw ImgConvError(.invalidArgument, path: path, "is an input of this run (\(role)) and also where an output goes: choose another output")
        }
    }
}

/// `refuseOutputsAmongInputs` for the images of a scan: only the files whose last name is an
/// output's are given a path and compared (making a path for every file was most of the check's
/// time, 4% of a run over 20,000 small images). Names are compared as bytes, as the file system
/// tells files apart.
public func refuseOutputsAmongInputs(_ outputs: [String], images files: FileList) throws {
    let names = outputs.map { Array(lastPathComponent($0).utf8) }
    try refuseOutputsAmongInputs(outputs, inputs: files.indices.lazy.filter { files.hasName(in: names, at: $0) }
        .map { (path: files[$0].path, role: "an image") })
}

/// A folder output (what `export` writes) built beside its target, in
/// `.<name>.imgconv-<pid>-<n>.tmp`, and moved into place only when complete, so that a failed or
/// interrupted run never leaves a partial folder: the target is then as it was. A missing or empty
/// target is replaced by a rename; a folder with files in it only when `foreignEntry` finds
/// nothing in it that is no part of an earlier output of the same kind (swapped in atomically,
/// then the old one removed). Anything else is refused before any work: a folder of other files
/// is never emptied.
public final class AtomicOutputFolder {
    public let targetPath: String
    public let temporaryPath: String
    private let replacesContent: Bool
    private var closed = false

    /// - Parameter foreignEntry: what in a non-empty target keeps it from being replaced (named
    ///   in the error), or nil.
    /// - Throws: `.io` naming the target when it is not a folder, holds something `foreignEntry`
    ///   names, or its parent cannot take the temporary folder.
    public init(target: String, foreignEntry: (String) -> String?) throws {
        var target = target
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        var st = stat()
        if lstat(target, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, let resolved = realpath(target, nil) {
            // A link to a folder: the folder it names is the output (the link stays).
            target = String(cString: resolved)
            free(resolved)
        }
        try checkOutputFolderTarget(target)
        targetPath = target
        if stat(target, &st) == 0 {
            let entries = (try? listAllEntries(target))?.filter { $0 != "." && $0 != ".." } ?? []
            replacesContent = !entries.isEmpty
            if replacesContent, let foreign = foreignEntry(target) {
                throw ImgConvError(.io, path: target,
                                   "holds \(foreign), which is no part of an earlier export: export writes a new folder (name a new or empty one)")
            }
        } else {
            replacesContent = false
        }
        let dir = parentFolder(target), base = lastPathComponent(target)
        try createFolders(dir)
        removeStaleTemporaries(dir: dir, base: base)
        var name = ""
        var made = false
        for attempt in 0..<100 {
            name = (dir == "/" ? "" : dir) + "/.\(base).imgconv-\(getpid())-\(attempt).tmp"
            if mkdir(name, 0o755) == 0 { made = true; break }
            if errno != EEXIST { break }
        }
        guard made else {
            let code = errno
            throw ImgConvError(systemErrorCode(code), path: target, "cannot create a folder beside it: \(errnoText(code))")
        }
        temporaryPath = name
        TemporaryFiles.register(name)
    }

    deinit {
        if !closed { abort() }
    }

    /// Moves the finished folder into place. A signal during the move is held back until it is
    /// done (the earlier output, swapped out, removed).
    /// - Throws: `.io` when the target changed meanwhile or the rename fails; the target is then
    ///   as it was and the temporary folder removed.
    public func commit() throws {
        TemporaryFiles.beginCommit()
        defer {
            closed = true
            TemporaryFiles.unregister(temporaryPath)
        }
        var st = stat()
        let exists = stat(targetPath, &st) == 0
        if exists && replacesContent {
            guard imc_exchange(temporaryPath, targetPath) == 0 else {
                let code = errno
                _ = imc_remove_tree(temporaryPath)
                throw ImgConvError(.io, path: targetPath, "cannot move the new folder into place: \(errnoText(code))")
            }
            _ = imc_remove_tree(temporaryPath)   // now the earlier output
            return
        }
        guard rename(temporaryPath, targetPath) == 0 else {
            let code = errno
            _ = imc_remove_tree(temporaryPath)
            let why = code == ENOTEMPTY || code == EEXIST ? "files appeared in it while the export ran" : errnoText(code)
            throw ImgConvError(.io, path: targetPath, "cannot move the new folder into place: \(why)")
        }
    }

    /// Removes the temporary folder; the target stays as it was.
    public func abort() {
        guard !closed else { return }
        closed = true
        _ = imc_remove_tree(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
    }
}

/// Writes a new file (it must not exist) in one go, without syncing: for files inside a temporary
/// output folder, which is moved into place as a whole.
/// - Throws: `.io` naming the path.
public func writeNewFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        let code = errno
        throw ImgConvError(systemErrorCode(code), path: path, "cannot create: \(errnoText(code))")
    }
    defer { close(fd) }
    var done = 0
    try bytes.withUnsafeBytes { buf in
        while done < buf.count {
            let n = write(fd, buf.baseAddress! + done, buf.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImgConvError(.io, path: path, "cannot write: \(errnoText(errno))")
            }
            done += n
        }
    }
}

/// Runs `body` holding a `flock` on a folder: exclusive for a run that commits a data file and
/// its manifest into it (renamed into place one run at a time, so the pair never holds one run's
/// data and the other's manifest), `shared` for a reader opening both (it sees them from one
/// run: the commit waits for it, and it for the commit). A folder that cannot be opened or
/// locked (a filesystem without flock) runs `body` unlocked.
public func withFolderLock<T>(_ folder: String, shared: Bool = false, _ body: () throws -> T) rethrows -> T {
    let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return try body() }
    defer { close(fd) }   // closing releases the lock
    while flock(fd, shared ? LOCK_SH : LOCK_EX) != 0 && errno == EINTR {}
    return try body()
}

/// The text of a NUL-terminated C buffer (up to its first NUL, or all of it), as UTF-8.
public func stringFromCBuffer(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
