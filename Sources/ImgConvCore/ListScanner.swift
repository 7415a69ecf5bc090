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
        guard let text = String(validatingUTF8: bytes.map { CChar(bitPattern: $0) } + [0]) else {
            throw ImgConvError(.corruptInput, path: list, "is not UTF-8 text")
        }
        let rows = try Self.parseCSV(text, path: list)
        let base = list.lastIndex(of: "/").map { String(list[..<$0]) } ?? "."
        var body = rows
        if let first = body.first, first.fields.count >= 2,
           first.fields[0].lowercased() == "path", first.fields[1].lowercased() == "label" {
            body.removeFirst()
        }
        var entries: [(line: Int, path: String, label: String, split: String?)] = []
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
        var classNames: [String]
        if let classes {
            classNames = classes
        } else if allIntegers && !entries.isEmpty {
            classNames = (0...(entries.map { Int($0.label)! }.max()!)).map(String.init)
        } else {
            classNames = Array(Set(entries.map(\.label))).sorted(by: naturalOrder ? naturalLess : codePointLess)
        }
        var index: [String: Int] = [:]
        for (i, name) in classNames.enumerated() { index[name] = i }
        var result = ScanResult(root: base, classes: classNames.enumerated().map { ClassEntry(index: $0, name: $1) },
                                files: [], skipped: [], warnings: [])
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
            var file = SourceFile(relativePath: e.path, path: path, label: label)
            file.split = e.split
            result.files.append(file)
        }
        for c in result.classes where !result.files.contains(where: { $0.label == c.index }) {
            result.warnings.append("class '\(c.name)' has no files; it keeps index \(c.index)")
        }
        return result
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
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
#if canImport(Glibc)
import Glibc
#endif
