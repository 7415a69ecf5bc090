/// An append-only array kept in fixed pages of 64 KiB, so that growing it never copies it and
/// never holds more than one page beyond what it stores (a plain array doubles its capacity). For
/// lists with an element per file of a dataset that may hold millions.
public struct PagedArray<Element>: RandomAccessCollection, Sendable where Element: Sendable {
    // Inlinable, so that other modules (the converter's labels, the candidate list) get it
    // specialized for their element type instead of looking up `[Element]`'s metadata per call.
    @inlinable static var perPage: Int { Swift.max(1, (64 << 10) / Swift.max(1, MemoryLayout<Element>.stride)) }
    @usableFromInline var pages: [[Element]] = []
    @usableFromInline var stored = 0

    public init() {}

    @inlinable public var count: Int { stored }
    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { stored }

    @inlinable public subscript(i: Int) -> Element {
        let per = Self.perPage
        return pages[i / per][i % per]
    }

    /// Appends `elements` a page at a time.
    public mutating func append(contentsOf elements: UnsafeBufferPointer<Element>) {
        let per = Self.perPage
        var from = 0
        while from < elements.count {
            if stored % per == 0 {
                var page: [Element] = []
                page.reserveCapacity(per)
                pages.append(page)
            }
            let n = Swift.min(per - stored % per, elements.count - from)
            pages[pages.count - 1].append(contentsOf: UnsafeBufferPointer(rebasing: elements[from..<(from + n)]))
            stored += n
            from += n
        }
    }

    /// Copies the elements in `range` to `target` (which has room for them), page by page.
    public func copy(_ range: Range<Int>, to target: UnsafeMutablePointer<Element>) {
        let per = Self.perPage
        var i = range.lowerBound, out = target
        while i < range.upperBound {
            let page = i / per, offset = i % per
            let n = Swift.min(per - offset, range.upperBound - i)
            pages[page].withUnsafeBufferPointer { out.initialize(from: $0.baseAddress! + offset, count: n) }
            out += n
            i += n
        }
    }

    @inlinable public mutating func append(_ e: Element) {
        let per = Self.perPage
        if stored % per == 0 {
            var page: [Element] = []
            page.reserveCapacity(per)
            pages.append(page)
        }
        pages[pages.count - 1].append(e)
        stored += 1
    }
}

extension PagedArray: Equatable where Element: Equatable {
    public static func == (a: PagedArray, b: PagedArray) -> Bool { a.elementsEqual(b) }
}

/// The files of a scan, stored compactly: their names back to back in paged bytes with an end
/// offset each (4 bytes a file besides the name), and, once per run of files that share a folder,
/// a label and a split, that folder and those values: no heap string per file and no growth
/// slack. Each `SourceFile` is made when it is asked for.
///
/// A file's path to open is its relative path joined to `base`, unless the relative path is
/// absolute (list files may name absolute paths).
public struct FileList: RandomAccessCollection, Sendable, Equatable {
    /// Consecutive files in one folder with one label and split.
    private struct Run: Sendable, Equatable {
        var first: Int
        var folder: Int      // index into `folders`
        var label: Int
        var split: UInt8     // 0: none, else index + 1 into `splitNames`
    }

    public let base: String
    private var names = PagedArray<UInt8>()
    private var ends = PagedArray<UInt32>()
    private var runs: [Run] = []
    /// Folder parts of relative paths, with their trailing `/` ("" for none).
    private var folders: [String] = []
    /// By the folder's bytes: String equality would take "café" in NFC and NFD, two folders on disk, as one.
    private var folderIndex: [[UInt8]: Int] = [:]
    private var splitNames: [String] = []

    public init(base: String) { self.base = base }

    public var startIndex: Int { 0 }
    public var endIndex: Int { ends.count }

    /// The run that holds file `i` (runs are few: a binary search).
    private func run(_ i: Int) -> Run {
        var lo = 0, hi = runs.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if runs[mid].first <= i { lo = mid } else { hi = mid - 1 }
        }
        return runs[lo]
    }

    public subscript(i: Int) -> SourceFile {
        let r = run(i)
        let relative = relativePath(at: i, run: r)
        var file = SourceFile(relativePath: relative, path: relative.hasPrefix("/") ? relative : join(base, relative),
                              label: r.label)
        if r.split > 0 { file.split = splitNames[Int(r.split) - 1] }
        return file
    }

    // The paths are written straight into their strings (this runs once per file converted).
    private func relativePath(at i: Int, run r: Run) -> String {
        let start = i == 0 ? 0 : Int(ends[i - 1]), end = Int(ends[i])
        var folder = folders[r.folder]
        return folder.withUTF8 { f in
            String(unsafeUninitializedCapacity: f.count + end - start) { out in
                _ = out.initialize(from: f)
                names.copy(start..<end, to: out.baseAddress! + f.count)
                return f.count + end - start
            }
        }
    }

    /// The relative path of file `i`.
    public func relativePath(at i: Int) -> String { relativePath(at: i, run: run(i)) }

    /// Whether the last name of file `i`'s path is, byte for byte, one of `candidates`, without
    /// making its paths.
    public func hasName(in candidates: [[UInt8]], at i: Int) -> Bool {
        let start = i == 0 ? 0 : Int(ends[i - 1]), length = Int(ends[i]) - start
        return candidates.contains { name in
            name.count == length && name.indices.allSatisfy { names[start + $0] == name[$0] }
        }
    }

    /// The label of file `i`, without making its paths.
    public func label(at i: Int) -> Int { run(i).label }

    /// Whether any file carries a split.
    public var hasSplits: Bool { !splitNames.isEmpty }

    /// Adds a file whose path is `base` joined with its relative path (or that path, when absolute).
    public mutating func append(relativePath: String, label: Int, split: String? = nil) {
        // No copy of the path: its folder part is compared in place, byte for byte, and copied only when new.
        let utf8 = relativePath.utf8
        let cut = utf8.lastIndex(of: UInt8(ascii: "/")).map(utf8.index(after:)) ?? utf8.startIndex
        let f = folderNumber(utf8[..<cut])
        let code = splitCode(split)
        let nameStart = utf8.distance(from: utf8.startIndex, to: cut)
        var path = relativePath
        path.withUTF8 { append(name: UnsafeBufferPointer(rebasing: $0[nameStart...]), folder: f, label: label, split: code) }
    }

    /// The number of a relative folder (`folderBytes`: its path with a trailing `/`, empty for
    /// none), for `append(name:folder:label:split:)`; added when new.
    mutating func folderNumber<C: Collection>(_ folderBytes: C) -> Int where C.Element == UInt8 {
        if let last = runs.last, folders[last.folder].utf8.elementsEqual(folderBytes) { return last.folder }
        if let known = folderIndex[Array(folderBytes)] { return known }
        folders.append(String(decoding: folderBytes, as: UTF8.self))
        folderIndex[Array(folderBytes)] = folders.count - 1
        return folders.count - 1
    }

    /// The code of a split name, for `append(name:folder:label:split:)`; added when new.
    mutating func splitCode(_ split: String?) -> UInt8 {
        guard let split else { return 0 }
        if let k = splitNames.firstIndex(of: split) { return UInt8(k + 1) }
        precondition(splitNames.count < 255, "too many split names")
        splitNames.append(split)
        return UInt8(splitNames.count)
    }

    /// Adds the file `name` (UTF-8, no `/`) of a folder numbered by `folderNumber`, with a split
    /// coded by `splitCode`.
    mutating func append(name: UnsafeBufferPointer<UInt8>, folder f: Int, label: Int, split code: UInt8) {
        if runs.last.map({ $0.folder != f || $0.label != label || $0.split != code }) ?? true {
            runs.append(Run(first: ends.count, folder: f, label: label, split: code))
        }
        names.append(contentsOf: name)
        precondition(names.count <= Int(UInt32.max), "over 4 GiB of file names")
        ends.append(UInt32(names.count))
    }

    public static func == (a: FileList, b: FileList) -> Bool {
        a.base == b.base && a.count == b.count && a.indices.allSatisfy { a[$0] == b[$0] }
    }
}
