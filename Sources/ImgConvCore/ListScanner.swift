/// Reads a CSV list of images in place of a folder tree: columns `path,label[,split]`, one image
/// a row. A header row (`path,label...`) is optional; fields may be quoted (`"a, b.png"`, with
/// `""` for a quote), lines may end in CRLF, paths may hold spaces and any Unicode. Relative
/// paths resolve against the CSV's own folder. Labels are class names, or integers (then the
/// classes are `0`...`max` and a label's class name is its number).
public struct ListScanner: Sendable {
    public var classes: [String]?
    public var naturalOrder = false

    public init(classes: [String]? = nil, naturalOrder: Bool = false) {
        self.classes = classes
        self.naturalOrder = naturalOrder
    }

    /// - Throws: `ImgConvError` naming the CSV and the line: a malformed row, a missing file,
    ///   a label that is not a listed class.
    public func scan(list: String) throws -> ScanResult {
        let input = try InputFile(list)
        var reader = CSVReader(path: list)
        var rows = Entries(list: list)
        try input.forEachChunk { chunk in try reader.feed(chunk) { try rows.add($0) } }
        try reader.finish { try rows.add($0) }
        let entries = rows.all
        let (classNames, allIntegers) = try classNames(entries, list: list)
        let base = list.lastIndex(of: "/").map { String(list[..<$0]) } ?? "."
        var index: [String: Int] = [:]
        for (i, name) in classNames.enumerated() { index[name] = i }
        var result = ScanResult(root: base, classes: classNames.enumerated().map { ClassEntry(index: $0, name: $1) },
                                files: FileList(base: base), skipped: [], warnings: [])
        for e in entries {
            let key = allIntegers && classes == nil ? String(Int(e.label)!) : e.label
            guard let label = index[key] else {
                throw ImgConvError(.invalidArgument, path: "\(list):\(e.line)", "label '\(e.label)' is not one of the listed classes")
            }
            let path = e.path.hasPrefix("/") ? e.path : join(base, e.path)
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw ImgConvError(.notFound, path: "\(list):\(e.line)", "file '\(e.path)' does not exist or is not a file")
            }
            result.files.append(relativePath: e.path, label: label, split: e.split)
        }
        let used = Set(result.files.indices.map { result.files.label(at: $0) })  // not a search per class: lists may name 100,000s
        for c in result.classes where !used.contains(c.index) {
            result.warnings.append("class '\(c.name)' has no files; it keeps index \(c.index)")
        }
        return result
    }

    /// The largest integer label: classes 0...label are all listed, so a stray huge number would
    /// otherwise ask for billions of classes.
    public static let maxIntegerLabel = (1 << 20) - 1

    /// A list entry: the CSV line, the path and label as written, the split if given.
    typealias Entry = (line: Int, path: String, label: String, split: String?)

    /// The rows of a list after the optional header row, checked as they are read.
    struct Entries {
        let list: String
        var all: [Entry] = []
        var first = true

        mutating func add(_ row: Row) throws {
            let f = row.fields
            defer { first = false }
            if first, f.count >= 2, f[0].lowercased() == "path", f[1].lowercased() == "label" { return }
            if f.count == 1 && f[0].isEmpty { return }  // blank line
            guard f.count == 2 || f.count == 3 else {
                throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "expected path,label[,split], found \(f.count) fields")
            }
            guard !f[0].isEmpty else { throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "empty path") }
            guard !f[1].isEmpty else { throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "empty label") }
            all.append((row.line, f[0], f[1], f.count == 3 && !f[2].isEmpty ? f[2] : nil))
        }
    }

    /// The class names of a list's entries, and whether every label is an integer.
    func classNames(_ entries: [Entry], list: String) throws -> (classNames: [String], allIntegers: Bool) {
        // Class names: integers make classes 0...max; names are ordered like folders.
        let allIntegers = entries.allSatisfy { Int($0.label) != nil && Int($0.label)! >= 0 }
        let classNames: [String]
        if let classes {
            classNames = classes
        } else if allIntegers, let top = entries.max(by: { Int($0.label)! < Int($1.label)! }) {
            // Every class up to the largest label is listed (and warned about when empty).
            guard Int(top.label)! <= Self.maxIntegerLabel else {
                throw ImgConvError(.limitExceeded, path: "\(list):\(top.line)",
                                   "integer label \(top.label) is over \(Self.maxIntegerLabel) (integer labels make the classes 0...label)")
            }
            classNames = (0...Int(top.label)!).map(String.init)
        } else {
            classNames = Array(Set(entries.map(\.label))).sorted(by: naturalOrder ? naturalLess : codePointLess)
        }
        return (classNames, allIntegers)
    }

    /// For the fuzz targets (`Fuzz/`): runs `scan(list:)`'s parsing of a CSV list held in memory
    /// (UTF-8 check, CSV, header row, row shapes, class names) without touching the file system.
    /// - Returns: the number of entries.
    /// - Throws: as `scan(list:)`.
    public static func parseCSVForFuzzing(_ bytes: [UInt8]) throws -> Int {
        var reader = CSVReader(path: "fuzz.csv")
        var entries = Entries(list: "fuzz.csv")
        try reader.feed(bytes[...]) { try entries.add($0) }
        try reader.finish { try entries.add($0) }
        _ = try ListScanner().classNames(entries.all, list: "fuzz.csv")
        return entries.all.count
    }

    struct Row {
        var line: Int
        var fields: [String]
    }

    /// RFC 4180 CSV read in pieces: commas, double quotes (a quote inside is doubled), LF, CRLF
    /// or CR line ends; a quoted field may span lines. Bytes are parsed as they come (the
    /// syntax is ASCII) and each field is checked to be UTF-8; memory is one row, with fields of
    /// at most `maxFieldBytes`.
    struct CSVReader {
        let path: String
        static let maxFieldBytes = 1 << 16
        static let maxFields = 64
        private var fields: [String] = []
        private var field: [UInt8] = []
        private var quoted = false, wasQuoted = false
        /// A quote seen inside a quoted field: the next byte says whether it was doubled.
        private var quoteSeen = false
        /// A CR ended the last row: an LF right after it belongs to it.
        private var afterCR = false
        private var line = 1, rowLine = 1
        private var offset = 0

        init(path: String) { self.path = path }

        private func error(_ text: String, line: Int? = nil) -> ImgConvError {
            ImgConvError(.corruptInput, path: "\(path):\(line ?? self.line)", text)
        }

        private mutating func endField() throws {
            guard let text = String(validating: field, as: UTF8.self) else { throw error("is not UTF-8 text") }
            guard fields.count < Self.maxFields else { throw error("more than \(Self.maxFields) fields in a row") }
            fields.append(wasQuoted ? text : text.trimmingSpaces())
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }

        private mutating func endRow(_ emit: (Row) throws -> Void) throws {
            try endField()
            try emit(Row(line: rowLine, fields: fields))
            fields.removeAll(keepingCapacity: true)
            line += 1
            rowLine = line
        }

        private mutating func append(_ b: UInt8) throws {
            guard field.count < Self.maxFieldBytes else { throw error("a field is longer than \(Self.maxFieldBytes) bytes") }
            field.append(b)
        }

        mutating func feed(_ bytes: ArraySlice<UInt8>, _ emit: (Row) throws -> Void) throws {
            for b in bytes {
                defer { offset += 1 }
                // A NUL would end a C string and silently drop every row after it.
                if b == 0 { throw error("holds a NUL byte (at byte \(offset)): not a text file") }
                if afterCR {
                    afterCR = false
                    if b == 0x0A { continue }
                }
                if quoteSeen {
                    quoteSeen = false
                    if b == 0x22 { try append(b); continue }
                    quoted = false
                }
                if quoted {
                    if b == 0x22 {
                        quoteSeen = true
                    } else {
                        if b == 0x0A { line += 1 }
                        try append(b)
                    }
                    continue
                }
                switch b {
                case 0x22:
                    guard field.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { throw error("a quote inside an unquoted field") }
                    field.removeAll(keepingCapacity: true)
                    quoted = true
                    wasQuoted = true
                case 0x2C:
                    try endField()
                case 0x0A:
                    try endRow(emit)
                case 0x0D:
                    try endRow(emit)
                    afterCR = true
                default:
                    try append(b)
                }
            }
        }

        mutating func finish(_ emit: (Row) throws -> Void) throws {
            if quoteSeen { quoteSeen = false; quoted = false }
            if quoted { throw error("unterminated quoted field", line: rowLine) }
            if !field.isEmpty || !fields.isEmpty || wasQuoted { try endRow(emit) }
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    public func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
#if canImport(Glibc)
import Glibc
#endif
