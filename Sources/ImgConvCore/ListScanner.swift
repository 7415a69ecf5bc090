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
        let bytes = try readFile(list)
        let (classNames, entries, allIntegers) = try plan(bytes, list: list)
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

    /// Everything `scan(list:)` does before it looks at the file system: UTF-8, CSV, rows, class names.
    func plan(_ bytes: [UInt8], list: String) throws -> (classNames: [String], entries: [Entry], allIntegers: Bool) {
        // A NUL would end the C string below and silently drop every row after it.
        if let nul = bytes.firstIndex(of: 0) {
            throw ImgConvError(.corruptInput, path: "\(list):\(Self.lineNumber(of: nul, in: bytes))",
                               "holds a NUL byte (at byte \(nul)): not a text file")
        }
        guard let text = String(validatingUTF8: bytes.map { CChar(bitPattern: $0) } + [0]) else {
            throw ImgConvError(.corruptInput, path: list, "is not UTF-8 text")
        }
        let rows = try Self.parseCSV(text, path: list)
        var body = rows
        if let first = body.first, first.fields.count >= 2,
           first.fields[0].lowercased() == "path", first.fields[1].lowercased() == "label" {
            body.removeFirst()
        }
        var entries: [Entry] = []
        for row in body {
            let f = row.fields
            if f.count == 1 && f[0].isEmpty { continue }  // blank line
            guard f.count == 2 || f.count == 3 else {
                throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "expected path,label[,split], found \(f.count) fields")
            }
            guard !f[0].isEmpty else { throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "empty path") }
            guard !f[1].isEmpty else { throw ImgConvError(.corruptInput, path: "\(list):\(row.line)", "empty label") }
            entries.append((row.line, f[0], f[1], f.count == 3 && !f[2].isEmpty ? f[2] : nil))
        }
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
        return (classNames, entries, allIntegers)
    }

    /// The line (from 1) holding byte `offset`, counting line ends as `parseCSV` does: LF, CRLF
    /// and a lone CR.
    static func lineNumber(of offset: Int, in bytes: [UInt8]) -> Int {
        var line = 1
        for i in 0..<offset {
            if bytes[i] == 0x0A || (bytes[i] == 0x0D && (i + 1 >= bytes.count || bytes[i + 1] != 0x0A)) { line += 1 }
        }
        return line
    }

    /// For the fuzz targets (`Fuzz/`): runs `scan(list:)`'s parsing of a CSV list held in memory
    /// (UTF-8 check, CSV, header row, row shapes, class names) without touching the file system.
    /// - Returns: the number of entries.
    /// - Throws: as `scan(list:)`.
    public static func parseCSVForFuzzing(_ bytes: [UInt8]) throws -> Int {
        try ListScanner().plan(bytes, list: "fuzz.csv").entries.count
    }

    struct Row {
        var line: Int
        var fields: [String]
    }

    /// RFC 4180 CSV: commas, double quotes (a quote inside is doubled), LF or CRLF line ends;
    /// a quoted field may span lines.
    static func parseCSV(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        var fields: [String] = []
        var field = ""
        var quoted = false
        var wasQuoted = false
        var line = 1, rowLine = 1
        let chars = Array(text.unicodeScalars)
        var i = 0
        func endField() {
            fields.append(wasQuoted ? field : field.trimmingSpaces())
            field = ""
            wasQuoted = false
        }
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { field.unicodeScalars.append("\""); i += 1 } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                guard field.trimmingSpaces().isEmpty else {
                    throw ImgConvError(.corruptInput, path: "\(path):\(line)", "a quote inside an unquoted field")
                }
                field = ""
                quoted = true
                wasQuoted = true
            } else if c == "," {
                endField()
            } else if c == "\n" || c == "\r" {
                if c == "\r" && i + 1 < chars.count && chars[i + 1] == "\n" { i += 1 }
                endField()
                rows.append(Row(line: rowLine, fields: fields))
                fields = []
                line += 1
                rowLine = line
            } else {
                field.unicodeScalars.append(c)
            }
            i += 1
        }
        if quoted { throw ImgConvError(.corruptInput, path: "\(path):\(rowLine)", "unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted {
            endField()
            rows.append(Row(line: rowLine, fields: fields))
        }
        return rows
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
