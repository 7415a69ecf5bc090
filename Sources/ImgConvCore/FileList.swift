/// An append-only array kept in fixed pages of 64 KiB, so that growing it never copies it and
/// never holds more than one page beyond what it stores (a plain array doubles its capacity). For
/// lists with an element per file of a dataset that may hold millions.
public struct PagedArray<Element>: RandomAccessCollection, Sendable where Element: Sendable {
    private static var perPage: Int { Swift.max(1, (64 << 10) / Swift.max(1, MemoryLayout<Element>.stride)) }
    private var pages: [[Element]] = []
    public private(set) var count = 0

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(i: Int) -> Element {
        let per = Self.perPage
        return pages[i / per][i % per]
    }

    /// The elements in `range`, as one array (copied page by page).
    public func elements(_ range: Range<Int>) -> [Element] {
        let per = Self.perPage
        var out: [Element] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        while i < range.upperBound {
            let page = i / per, offset = i % per
            let n = Swift.min(per - offset, range.upperBound - i)
            out.append(contentsOf: pages[page][offset..<(offset + n)])
            i += n
        }
        return out
    }

    public mutating func append(_ e: Element) {
        let per = Self.perPage
        if count % per == 0 {
            var page: [Element] = []
            page.reserveCapacity(per)
            pages.append(page)
        }
        pages[pages.count - 1].append(e)
        count += 1
    }
}

extension PagedArray: Equatable where Element: Equatable {
    public static func == (a: PagedArray, b: PagedArray) -> Bool { a.elementsEqual(b) }
}

/// The files of a scan, stored compactly: their relative paths back to back in paged bytes, with
/// an end offset and a label each (and a split code when there are splits): 8 bytes a file
/// besides the path text, and no growth slack, instead of two heap strings a file. Each
/// `SourceFile` is made when it is asked for.
///
/// A file's path to open is its relative path joined to `base`, unless the relative path is
/// absolute (list files may name absolute paths).
public struct FileList: RandomAccessCollection, Sendable, Equatable {
    public let base: String
    private var text = PagedArray<UInt8>()
    private var ends = PagedArray<UInt32>()
    private var labels = PagedArray<Int32>()
    private var splits = PagedArray<UInt8>()   // empty while no file has a split
    private var splitNames: [String] = []

    public init(base: String) { self.base = base }

    public var startIndex: Int { 0 }
    public var endIndex: Int { ends.count }

    public subscript(i: Int) -> SourceFile {
        let relative = relativePath(at: i)
        var file = SourceFile(relativePath: relative, path: relative.hasPrefix("/") ? relative : join(base, relative),
                              label: Int(labels[i]))
        if !splits.isEmpty, splits[i] > 0 { file.split = splitNames[Int(splits[i]) - 1] }
        return file
    }

    /// The relative path of file `i`.
    public func relativePath(at i: Int) -> String {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        return String(decoding: text.elements(start..<Int(ends[i])), as: UTF8.self)
    }

    /// The label of file `i`, without making its paths.
    public func label(at i: Int) -> Int { Int(labels[i]) }

    /// Whether any file carries a split.
    public var hasSplits: Bool { !splitNames.isEmpty }

    /// Adds a file whose path is `base` joined with its relative path (or that path, when absolute).
    public mutating func append(relativePath: String, label: Int, split: String? = nil) {
        for u in relativePath.utf8 { text.append(u) }
        precondition(text.count <= Int(UInt32.max), "over 4 GiB of file names")
        ends.append(UInt32(text.count))
        labels.append(Int32(clamping: label))
        var code: UInt8 = 0
        if let split {
            if let k = splitNames.firstIndex(of: split) {
                code = UInt8(k + 1)
            } else {
                precondition(splitNames.count < 255, "too many split names")
                splitNames.append(split)
                code = UInt8(splitNames.count)
            }
            // The first split seen: the files before it had none.
            while splits.count < labels.count - 1 { splits.append(0) }
        }
        if !splitNames.isEmpty { splits.append(code) }
    }

    public static func == (a: FileList, b: FileList) -> Bool {
        a.base == b.base && a.count == b.count && a.indices.allSatisfy { a[$0] == b[$0] }
    }
}
