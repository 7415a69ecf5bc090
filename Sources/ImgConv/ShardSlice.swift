import FoundationEssentials
import Glibc
import ImgConvCore

/// What one shard needs of a plan: the plan's settings, the shard's range of every split with
/// those images only, and the files they are in. Loaded from a plan file by `ShardPlan.loadShard`,
/// whose work and memory follow the shard's size, not the plan's (beyond reading and hashing the
/// file): a plan of 1.28 M images is about 200 MB of JSON, and a shard of a few thousand images
/// would otherwise decode all of it.
public struct ShardSlice: Sendable {
    /// The plan without its files and images (`files` and every split's `items` are empty; the
    /// splits keep their names and ranges).
    public var plan: ShardPlan
    public var index: Int
    /// The files the shard's images are in, in plan order; `items[].file` index into this.
    public var files: [ShardPlan.File]
    /// Every split's images in the shard's range (`plan.splits[s].ranges[index]`), in order.
    public var items: [[ShardPlan.Item]]
    /// The relative paths of the plan's files (any shard's) whose last name is one of the names
    /// asked for: the outputs' (`refuseOutputsAmongInputs` needs no other file).
    public var filesNamed: [String]

    init(plan: ShardPlan, index: Int, files: [ShardPlan.File], items: [[ShardPlan.Item]], filesNamed: [String]) {
        self.plan = plan
        self.index = index
        self.files = files
        self.items = items
        self.filesNamed = filesNamed
    }

    /// The slice of a plan already decoded whole (a plan not in the canonical form).
    init(plan whole: ShardPlan, index: Int, names: [[UInt8]]) {
        var shell = whole
        shell.files = []
        shell.splits = whole.splits.map { .init(name: $0.name, items: [], ranges: $0.ranges) }
        let ranged = whole.splits.map { split in Array(split.items[split.ranges[index][0]..<split.ranges[index][1]]) }
        // The files in plan order, as the slice reader finds them; a file number the plan has
        // not is left out of range, for the shard's check of its images to refuse.
        let wanted = Set(ranged.joined().map(\.file).filter { $0 >= 0 && $0 < whole.files.count }).sorted()
        let renumber = Dictionary(uniqueKeysWithValues: wanted.enumerated().map { ($0.element, $0.offset) })
        files = wanted.map { whole.files[$0] }
        items = ranged.map { part in
            part.map { item in
                var item = item
                item.file = renumber[item.file] ?? -1
                return item
            }
        }
        filesNamed = whole.files.map(\.path).filter { path in
            let name = Array((path.split(separator: "/").last.map(String.init) ?? path).utf8)
            return names.contains(name)
        }
        plan = shell
        self.index = index
    }
}

extension ShardPlan {
    /// Refuses a plan in which shard `index` has no range of every split within its images.
    func checkRange(of index: Int, path: String) throws {
        guard index >= 0, index < shards, splits.allSatisfy({ split in
            split.ranges.count == shards && split.ranges[index].count == 2 && split.ranges[index][0] >= 0
                && split.ranges[index][0] <= split.ranges[index][1] && split.ranges[index][1] <= split.items.count
        }) else { throw Self.rangesMismatch(path, shards: shards) }
    }

    /// Reads a plan and checks its hash as `load` does, keeping only what shard `index` needs
    /// (`ShardSlice`), and the plan files whose last name is in `names`.
    /// - Throws: as `load`; `.invalidArgument` when the plan has not `shards` shards.
    public static func loadShard(_ path: String, bytes: [UInt8], index: Int, of shards: Int, names: [[UInt8]]) throws -> ShardSlice {
        func checkShards(_ plan: ShardPlan) throws {
            guard shards == plan.shards else {
                throw ImgConvError(.invalidArgument, path: path, "is a plan of \(plan.shards) shards, not \(shards) (--shard \(index)/\(shards))")
            }
        }
        // The hash first (in place, over the whole text): the slice is read only from an intact
        // plan in the canonical form. Any other text (another form of the same JSON, or a plan
        // that was changed) is decoded whole, and its hash checked as `load` checks it.
        if canonicalHashMatches(bytes) == true {
            let slice: ShardSlice?
            do { slice = try PlanSliceReader(bytes, path: path).slice(index: index, names: names) } catch let e as ImgConvError {
                throw e
            } catch {
                throw ImgConvError(.corruptInput, path: path, "not an imgconv plan: \(error)")
            }
            if let slice {
                try checkHeader(slice.plan, path: path)
                try checkRanges(slice.plan, path: path)
                try checkShards(slice.plan)
                return slice
            }
        }
        let plan = try load(path, bytes: bytes)
        try checkShards(plan)
        try plan.checkRange(of: index, path: path)
        return ShardSlice(plan: plan, index: index, names: names)
    }
}

/// Reads the part of a plan in the form `ShardPlan.encoded()` writes that one shard needs,
/// finding the rest by byte patterns without decoding it. Every pattern begins or ends with a
/// quote that is not escaped, which no JSON string can hold, so it only matches the plan's own
/// structure. Any other form of the text gives nil, and the caller decodes the whole plan.
private struct PlanSliceReader {
    let bytes: [UInt8]
    let path: String

    init(_ bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    /// The first `needle` in `bytes[from..<to]`.
    func find(_ needle: StaticString, from: Int, to: Int) -> Int? {
        let n = needle.utf8CodeUnitCount
        guard to - from >= n else { return nil }
        return bytes.withUnsafeBytes { h in byteSearch(h, from: from, to: to, UnsafeRawPointer(needle.utf8Start), n) }
    }

    /// The offsets of the objects in `bytes[from..<to]` that start with `opening` (a pattern
    /// that holds a quote, so found only where an object of the array starts), in order.
    /// `body` gets each object's ordinal and offset, and returns false to stop.
    func forEachObject(_ opening: StaticString, from: Int, to: Int, _ body: (Int, Int) -> Bool) {
        let n = opening.utf8CodeUnitCount
        bytes.withUnsafeBytes { h in
            let base = h.baseAddress!
            var at = from, ordinal = 0
            while to - at >= n, let hit = memchr(base + at, 0x7B, to - at) {   // "{"
                at = base.distance(to: UnsafeRawPointer(hit))
                if to - at >= n && memcmp(base + at, opening.utf8Start, n) == 0 {
                    if !body(ordinal, at) { return }
                    ordinal += 1
                    at += n
                } else {
                    at += 1
                }
            }
        }
    }

    func slice(index: Int, names: [[UInt8]]) throws -> ShardSlice? {
        guard let filesKey = find("\"files\":[", from: 0, to: bytes.count) else { return nil }
        let filesStart = filesKey + 9
        // The key after "files" in sorted order is "format": the array ends just before it.
        guard let filesEnd = find("],\"format\":\"", from: filesStart, to: bytes.count),
              let splitsKey = find("\"splits\":[", from: filesEnd, to: bytes.count) else { return nil }
        let splitsStart = splitsKey + 10

        // The splits: each one's items are skipped to its name and ranges.
        var splits: [ShardPlan.Split] = []
        var itemSpans: [(start: Int, end: Int)] = []
        var at = splitsStart
        var splitsEnd = -1
        while true {
            guard bytes.count - at > 10, bytes[at] == 0x7B, let itemsEnd = find("],\"name\":\"", from: at, to: bytes.count),
                  find("{\"items\":[", from: at, to: at + 10) == at else { return nil }
            itemSpans.append((at + 10, itemsEnd))
            let tail: (name: String, ranges: [[Int]], end: Int)? = bytes.withUnsafeBufferPointer { buf in
                var c = PlanJSONReader.Cursor(buf, at: itemsEnd + 1)
                guard c.literal(",\"name\":"), let name = c.string(), c.literal(",\"ranges\":["),
                      let ranges = c.array({ c -> [Int]? in c.byte(0x5B) ? c.array({ $0.int() }) : nil }),
                      c.byte(0x7D) else { return nil }
                return (name, ranges, c.at)
            }
            guard let tail else { return nil }
            splits.append(.init(name: tail.name, items: [], ranges: tail.ranges))
            at = tail.end
            if at < bytes.count && bytes[at] == 0x2C { at += 1; continue }
            guard at < bytes.count, bytes[at] == 0x5D else { return nil }
            splitsEnd = at
            break
        }

        // The rest of the plan, with both arrays empty, is a few hundred bytes (and the skips).
        var shell = [UInt8]()
        shell.append(contentsOf: bytes[0..<filesStart])
        shell.append(contentsOf: bytes[filesEnd..<splitsStart])
        shell.append(contentsOf: bytes[splitsEnd...])
        var plan = try JSONDecoder().decode(ShardPlan.self, from: Data(shell))
        guard plan.files.isEmpty, plan.splits.isEmpty else { return nil }
        plan.splits = splits
        guard plan.shards >= 1, splits.allSatisfy({ $0.ranges.count == plan.shards }) else {
            throw ShardPlan.rangesMismatch(path, shards: plan.shards)
        }
        guard index >= 0, index < plan.shards else {
            // Not a shard of this plan: the caller's check names the plan's number of shards.
            return ShardSlice(plan: plan, index: index, files: [], items: splits.map { _ in [] }, filesNamed: [])
        }
        guard splits.allSatisfy({ $0.ranges[index].count == 2 }) else { throw ShardPlan.rangesMismatch(path, shards: plan.shards) }

        // The shard's images: found by counting objects up to the range, then parsed.
        var items: [[ShardPlan.Item]] = []
        for (s, span) in itemSpans.enumerated() {
            let r = splits[s].ranges[index]
            var total = 0
            var offsets: [Int] = []
            forEachObject("{\"channels\":", from: span.start, to: span.end) { ordinal, offset in
                if ordinal >= r[0] && ordinal < r[1] { offsets.append(offset) }
                total += 1
                return true
            }
            guard r[0] >= 0, r[0] <= r[1], r[1] <= total else { throw ShardPlan.rangesMismatch(path, shards: plan.shards) }
            var part: [ShardPlan.Item] = []
            part.reserveCapacity(offsets.count)
            for offset in offsets {
                let item: ShardPlan.Item? = bytes.withUnsafeBufferPointer { buf in
                    var c = PlanJSONReader.Cursor(buf, at: offset)
                    return c.item()
                }
                guard let item else { return nil }
                part.append(item)
            }
            items.append(part)
        }

        // The files those images are in, renumbered in plan order; and the files named like an output.
        let wanted = Set(items.joined().map(\.file).filter { $0 >= 0 }).sorted()
        var renumber = [Int: Int](minimumCapacity: wanted.count)
        var files: [ShardPlan.File] = []
        files.reserveCapacity(wanted.count)
        var next = 0, failed = false
        forEachObject("{\"label\":", from: filesStart, to: filesEnd) { ordinal, offset in
            guard next < wanted.count else { return false }   // all found
            guard ordinal == wanted[next] else { return true }
            let file: ShardPlan.File? = bytes.withUnsafeBufferPointer { buf in
                var c = PlanJSONReader.Cursor(buf, at: offset)
                return c.file()
            }
            guard let file else { failed = true; return false }
            renumber[ordinal] = files.count
            files.append(file)
            next += 1
            return true
        }
        guard !failed else { return nil }
        for s in items.indices {
            for i in items[s].indices {
                // A file number the plan has not: left out of range, for the shard's check to refuse.
                items[s][i].file = renumber[items[s][i].file] ?? -1
            }
        }

        // Plan files whose path ends with an output's name: '"path":"NAME"}' or '/NAME"}'.
        var named: [String] = []
        for name in names where !name.isEmpty {
            var from = filesStart
            let tail = name + [0x22, 0x7D]
            while let hit = bytes.withUnsafeBytes({ h in tail.withUnsafeBytes { byteSearch(h, from: from, to: filesEnd + 1, $0.baseAddress!, tail.count) } }) {
                from = hit + 1
                guard hit > 0, bytes[hit - 1] == 0x2F || bytes[hit - 1] == 0x22 else { continue }
                // The path's start: the last '"path":"' before it, within this file's object.
                var s = hit - 1
                while s >= filesStart + 7 && !(bytes[s] == 0x22 && bytes[s - 1] == 0x3A && bytes[s - 2] == 0x22 && bytes[s - 3] == 0x68) { s -= 1 }
                guard s >= filesStart + 7 else { return nil }
                let raw = bytes[(s + 1)..<(hit + name.count)]
                guard !raw.contains(0x5C), let path = String(validating: raw, as: UTF8.self) else { return nil }
                named.append(path)
            }
        }
        return ShardSlice(plan: plan, index: index, files: files, items: items, filesNamed: named)
    }
}
