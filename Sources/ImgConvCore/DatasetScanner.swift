#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// One image candidate found under a class folder.
public struct SourceFile: Sendable, Equatable {
    /// Path relative to the dataset root, with `/` separators (as written to the manifest).
    public var relativePath: String
    /// Path to open (root joined with the relative path).
    public var path: String
    public var label: Int
    /// The split a list file assigned (`train`, `val`, `test`), if any.
    public var split: String?

    public init(relativePath: String, path: String, label: Int) {
        self.relativePath = relativePath
        self.path = path
        self.label = label
    }
}

/// A class folder: its name and index (position in code-point order).
public struct ClassEntry: Sendable, Equatable {
    public var index: Int
    public var name: String

    public init(index: Int, name: String) {
        self.index = index
        self.name = name
    }
}

/// A file that will not become part of the tensor, and why.
public struct SkippedFile: Sendable, Equatable, Codable {
    public var path: String
    public var reason: String
    /// Why a file whose name's bytes are not UTF-8 is left out (its `path` shows them as `\xNN`):
    /// it could be neither opened by a Swift string nor recorded in the JSON manifest.
    public static let invalidNameReason = "file name is not valid UTF-8"
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// What scanning `ROOT/<class>/**/<file>` found.
public struct ScanResult: Sendable {
    public var root: String
    public var classes: [ClassEntry]
    public var files: FileList
    /// Entries passed over by the scan itself (symlink loops, unreadable folders).
    public var skipped: [SkippedFile]
    public var warnings: [String]

    public init(root: String, classes: [ClassEntry], files: FileList, skipped: [SkippedFile], warnings: [String]) {
        self.root = root
        self.classes = classes
        self.files = files
        self.skipped = skipped
        self.warnings = warnings
    }
}

/// Compares strings by their Unicode code points, the documented order of classes and files
/// (Swift's `<` on String compares canonical equivalents and differs from this).
public func codePointLess(_ a: String, _ b: String) -> Bool {
    // UTF-8 sorts byte by byte in code point order, and a String's UTF-8 is always valid.
    var a = a, b = b
    return a.withUTF8 { x in
        b.withUTF8 { y in
            let n = min(x.count, y.count)
            if n > 0 {
                let c = memcmp(x.baseAddress!, y.baseAddress!, n)
                if c != 0 { return c < 0 }
            }
            return x.count < y.count
        }
    }
}

/// Natural order: runs of ASCII digits compare as numbers (then shorter first, so `02` after `2`),
/// everything else by code points.
public func naturalLess(_ a: String, _ b: String) -> Bool {
    func runs(_ s: String) -> [(isNumber: Bool, text: [UInt32])] {
        var out: [(Bool, [UInt32])] = []
        for u in s.unicodeScalars {
            let digit = u.value >= 48 && u.value <= 57
            if let last = out.last, last.0 == digit { out[out.count - 1].1.append(u.value) } else { out.append((digit, [u.value])) }
        }
        return out
    }
    let ra = runs(a), rb = runs(b)
    for (x, y) in zip(ra, rb) {
        if x.isNumber && y.isNumber {
            let xs = Array(x.text.drop { $0 == 48 }), ys = Array(y.text.drop { $0 == 48 })
            if xs.count != ys.count { return xs.count < ys.count }
            if xs != ys { return xs.lexicographicallyPrecedes(ys) }
            if x.text.count != y.text.count { return x.text.count < y.text.count }
        } else if x.text != y.text {
            return x.text.lexicographicallyPrecedes(y.text)
        }
    }
    return ra.count < rb.count
}

/// Finds classes and files under a dataset root.
///
/// Classes are the immediate subfolders of the root, in code-point order of their names; a class's
/// label is its position. Files are found recursively under each class and ordered by relative
/// path, component by component in code-point order. Names starting with `.` and `__MACOSX` are
/// ignored. Symbolic links are followed; a link back to a folder being walked is reported and skipped.
public struct DatasetScanner: Sendable {
    /// Classes to take, in label order (nil: every class folder).
    public var classes: [String]?
    /// Order class folders with digit runs compared as numbers (`2` < `10`).
    public var naturalOrder = false

    /// Leave out files whose names are not valid UTF-8 (listed as skipped) instead of failing.
    public var skipBadNames = false

    public init(classes: [String]? = nil, naturalOrder: Bool = false, skipBadNames: Bool = false) {
        self.classes = classes
        self.naturalOrder = naturalOrder
        self.skipBadNames = skipBadNames
    }

    /// - Throws: `ImgConvError` `.notFound` when the root is missing or not a folder, or a listed
    ///   class has no folder; `.io` when it cannot be listed; `.unsupported` for a class folder
    ///   whose name is not valid UTF-8, and (unless `skipBadNames`) for such a file.
    public func scan(root: String) throws -> ScanResult {
        let result = try scanFolders(root: root)
        if !skipBadNames, let bad = result.skipped.first(where: { $0.reason == SkippedFile.invalidNameReason }) {
            throw ImgConvError(.unsupported, path: bad.path, "\(SkippedFile.invalidNameReason): rename it (for example with convmv), or pass --skip-bad to leave it out")
        }
        return result
    }

    private func scanFolders(root: String) throws -> ScanResult {
        var st = stat()
        guard stat(root, &st) == 0 else {
            throw ImgConvError(.notFound, path: root, "dataset root does not exist (\(errnoText(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw ImgConvError(.notFound, path: root, "dataset root is not a folder")
        }
        var result = ScanResult(root: root, classes: [], files: FileList(base: root), skipped: [], warnings: [])
        let folders = try listDirectory(root).filter { isFolder(join(root, $0)) }
        // ROOT/train/<class>, ROOT/val/<class>, ROOT/test/<class>: a dataset already split.
        let splitFolders = folders.filter { Self.splitNames[$0] != nil }
        if !folders.isEmpty && splitFolders.count == folders.count && folders.contains(where: { $0 == "train" || $0 == "test" }) {
            return try scanSplits(root: root, splitFolders: splitFolders, rootID: FileID(st))
        }
        let classNames: [String]
        if let classes {
            let present = Set(folders)
            if let missing = classes.first(where: { !present.contains($0) }) {
                throw ImgConvError(.notFound, path: join(root, missing), "class '\(missing)' is listed but has no folder")
            }
            var seen = Set<String>()
            if let twice = classes.first(where: { !seen.insert($0).inserted }) {
                throw ImgConvError(.invalidArgument, "class '\(twice)' is listed twice")
            }
            classNames = classes
        } else {
            classNames = folders.sorted(by: naturalOrder ? naturalLess : codePointLess)
        }
        let rootID = FileID(st)
        var visited: Set<FileID> = [rootID]
        for (index, name) in classNames.enumerated() {
            result.classes.append(ClassEntry(index: index, name: name))
            let before = result.files.count
            try walk(dir: join(root, name), relative: name, label: index, split: nil, ancestors: [rootID], visited: &visited,
                 into: &result.files, skipped: &result.skipped)
            if result.files.count == before {
                result.warnings.append("class '\(name)' has no files; it keeps index \(index)")
            }
        }
        return result
    }

    /// Folder names that mark a split, and the split they are.
    static let splitNames = ["train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"]

    private func scanSplits(root: String, splitFolders: [String], rootID: FileID) throws -> ScanResult {
        var result = ScanResult(root: root, classes: [], files: FileList(base: root), skipped: [], warnings: [])
        var classFolders: [String: [String]] = [:]   // split folder -> its class folders
        for folder in splitFolders {
            let dir = join(root, folder)
            classFolders[folder] = try listDirectory(dir).filter { isFolder(join(dir, $0)) }
        }
        let present = Set(classFolders.values.flatMap { $0 })
        let names: [String]
        if let classes {
            if let missing = classes.first(where: { !present.contains($0) }) {
                throw ImgConvError(.notFound, path: root, "class '\(missing)' is listed but no split has a folder for it")
            }
            names = classes
        } else {
            names = present.sorted(by: naturalOrder ? naturalLess : codePointLess)
        }
        result.classes = names.enumerated().map { ClassEntry(index: $0, name: $1) }
        var visited: Set<FileID> = [rootID]
        for folder in splitFolders.sorted(by: codePointLess) {
            for (index, name) in names.enumerated() where classFolders[folder]!.contains(name) {
                try walk(dir: join(join(root, folder), name), relative: folder + "/" + name, label: index,
                     split: Self.splitNames[folder], ancestors: [rootID], visited: &visited,
                     into: &result.files, skipped: &result.skipped)
            }
        }
        let used = Set(result.files.indices.map { result.files.label(at: $0) })
        for c in result.classes where !used.contains(c.index) {
            result.warnings.append("class '\(c.name)' has no files; it keeps index \(c.index)")
        }
        return result
    }

    private struct FileID: Hashable {
        var dev: UInt64
        var ino: UInt64
        init(_ st: stat) {
            dev = UInt64(st.st_dev)
            ino = UInt64(st.st_ino)
        }
    }

    /// Walks a folder (links followed) into `files`. Each real folder is visited once per scan
    /// (`visited`), so links to a folder already walked (a loop, or a diamond of links that would
    /// make the walk exponential) are skipped and listed; folders of pseudo filesystems (`/proc`,
    /// `/sys`, `/dev/pts`...) are never entered.
    private func walk(dir: String, relative: String, label: Int, split: String?, ancestors: Set<FileID>,
                      visited: inout Set<FileID>, into files: inout FileList, skipped: inout [SkippedFile]) throws {
        var st = stat()
        guard stat(dir, &st) == 0 else {
            skipped.append(SkippedFile(path: relative, reason: "cannot open folder: \(errnoText(errno))"))
            return
        }
        let id = FileID(st)
        if ancestors.contains(id) {
            skipped.append(SkippedFile(path: relative, reason: "symbolic link loop"))
            return
        }
        guard visited.insert(id).inserted else {
            skipped.append(SkippedFile(path: relative, reason: "folder already walked (reached again through a link)"))
            return
        }
        if let kind = pseudoFilesystem(dir) {
            skipped.append(SkippedFile(path: relative, reason: "folder on a pseudo filesystem (\(kind)), not entered"))
            return
        }
        let listing: DirectoryListing
        do {
            listing = try DirectoryListing(dir)
        } catch let e as ImgConvError where e.isHostFault {
            // Out of descriptors or memory: the folder's images are not to be left out for it.
            throw e.at(relative)
        } catch {
            skipped.append(SkippedFile(path: relative, reason: "cannot list folder: \((error as? ImgConvError)?.message ?? "\(error)")"))
            return
        }
        var inner = ancestors
        inner.insert(id)
        func visit(_ name: String, regular: Bool, validName: Bool) throws {
            let rel = relative + "/" + name
            guard validName else {
                skipped.append(SkippedFile(path: rel, reason: SkippedFile.invalidNameReason))
                return
            }
            // The folder entry's type spares a stat for plain files (links and unknown types are
            // stat'ed, so links are followed).
            if regular {
                files.append(relativePath: rel, label: label, split: split)
                return
            }
            let path = join(dir, name)
            var est = stat()
            guard stat(path, &est) == 0 else {
                skipped.append(SkippedFile(path: rel, reason: "cannot stat: \(errnoText(errno))"))
                return
            }
            switch est.st_mode & S_IFMT {
            case S_IFDIR:
                try walk(dir: path, relative: rel, label: label, split: split, ancestors: inner, visited: &visited,
                         into: &files, skipped: &skipped)
            case S_IFREG:
                files.append(relativePath: rel, label: label, split: split)
            default:
                skipped.append(SkippedFile(path: rel, reason: "not a regular file"))
            }
        }
        guard listing.allValid else {
            for (name, regular, validName) in listing.entriesByShownName() { try visit(name, regular: regular, validName: validName) }
            return
        }
        // Names that are all UTF-8 are listed in code-point order, and a plain file's name goes
        // to the list from the listing's bytes (no string per file).
        let folder = files.folderNumber((relative + "/").utf8), code = files.splitCode(split)
        for i in 0..<listing.count {
            if listing.isRegular(i) {
                files.append(name: listing.name(i), folder: folder, label: label, split: code)
            } else {
                try visit(String(decoding: listing.name(i), as: UTF8.self), regular: false, validName: true)
            }
        }
    }
}

/// The kind of pseudo filesystem a folder is on (proc, sysfs, devpts...), whose files are the
/// kernel's state, not data; nil for a filesystem that holds files.
func pseudoFilesystem(_ path: String) -> String? {
    let type = imc_filesystem_type(path)
    guard type >= 0 else { return nil }
    let kinds: [Int64: String] = [
        0x9FA0: "proc", 0x6265_6572: "sysfs", 0x1CD1: "devpts", 0x0027_E0EB: "cgroup", 0x6367_7270: "cgroup2",
        0x6462_6720: "debugfs", 0x7472_6163: "tracefs", 0x7363_6673: "securityfs", 0xCAFE_4A11: "bpf",
        0x6165_676C: "pstore", 0x6265_6570: "configfs", 0x6573_5543: "fusectl", 0x4249_4E4D: "binfmt_misc",
        0x6E73_6673: "nsfs", 0xDE5E_81E4: "efivarfs",
    ]
    return kinds[type]
}

/// Visible entries of a folder (hidden names and `__MACOSX` dropped): the folders a dataset's
/// classes and splits come from.
/// - Throws: `.unsupported` for an entry that may be a folder and whose name is not valid UTF-8
///   (it would be a class that cannot be named); other such entries are left out.
func listDirectory(_ path: String) throws -> [String] {
    try listDirectoryTyped(path).compactMap { entry in
        if entry.validName { return entry.name }
        if entry.regular { return nil }
        throw ImgConvError(.unsupported, path: join(path, entry.name), "folder name is not valid UTF-8: rename it (for example with convmv)")
    }
}

/// Visible entries of a folder, each with whether the folder says it is a regular file and
/// whether its name is valid UTF-8 (if not, `name` shows the bytes as `\xNN` and cannot open it),
/// in code-point order of the names (of the shown names when one is not valid UTF-8).
func listDirectoryTyped(_ path: String) throws -> [(name: String, regular: Bool, validName: Bool)] {
    try DirectoryListing(path).entriesByShownName()
}

/// A folder's visible entries as `imc_list_dir` lists them: sorted by their bytes in C (for
/// UTF-8, code-point order; a folder of thousands of images is sorted in a fraction of what
/// sorting Strings costs), their names kept as C bytes.
final class DirectoryListing {
    private var list = imc_dir_list()
    /// Whether every name is valid UTF-8 (then the listing's order is code-point order).
    private(set) var allValid = true
    var count: Int { list.count }

    init(_ path: String) throws {
        guard path.withCString({ imc_list_dir($0, &list) }) == 0 else {
            let code = errno
            throw ImgConvError(systemErrorCode(code), path: path, "cannot list folder: \(errnoText(code))")
        }
        for i in 0..<list.count {
            let b = name(i)
            guard b.allSatisfy({ $0 < 0x80 }) || String(validating: b, as: UTF8.self) != nil else {
                allValid = false
                break
            }
        }
    }

    deinit { imc_free_dir_list(&list) }

    /// The bytes of entry `i`'s name.
    func name(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        let c = list.names + list.entries[i].offset
        return UnsafeBufferPointer(start: UnsafeRawPointer(c).assumingMemoryBound(to: UInt8.self), count: strlen(c))
    }

    /// Whether the folder says entry `i` is a regular file.
    func isRegular(_ i: Int) -> Bool { list.entries[i].type == UInt8(DT_REG) }

    /// Every entry as a name (shown as `\xNN` where not UTF-8), whether the folder says it is
    /// a regular file, and whether its name is valid UTF-8, in code-point order of those names.
    func entriesByShownName() -> [(name: String, regular: Bool, validName: Bool)] {
        var entries: [(name: String, regular: Bool, validName: Bool)] = []
        entries.reserveCapacity(list.count)
        for i in 0..<list.count {
            let (name, valid) = checkedName(list.names + list.entries[i].offset)
            entries.append((name, isRegular(i), valid))
        }
        if !allValid { entries.sort { codePointLess($0.name, $1.name) } }
        return entries
    }
}

/// `dir` and `name` joined with one `/`, written straight into one string (this runs once per
/// file converted).
func join(_ dir: String, _ name: String) -> String {
    var dir = dir, name = name
    return dir.withUTF8 { d in
        name.withUTF8 { n in
            let slash = d.last == UInt8(ascii: "/") ? 0 : 1
            return String(unsafeUninitializedCapacity: d.count + slash + n.count) { out in
                _ = out.initialize(from: d)
                if slash == 1 { out[d.count] = UInt8(ascii: "/") }
                _ = UnsafeMutableBufferPointer(rebasing: out[(d.count + slash)...]).initialize(from: n)
                return d.count + slash + n.count
            }
        }
    }
}
