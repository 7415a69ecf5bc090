/// How images are divided into named splits (`train`, `val`, `test`): by fractions, drawn with a
/// seed (the same seed gives the same assignment on every machine), optionally per class
/// (stratified) so every class is divided in the same proportions.
public struct SplitPlan: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var name: String
        public var fraction: Double
    }

    public var parts: [Part]
    public var stratify: Bool
    public var seed: UInt64

    public init(parts: [Part], stratify: Bool = false, seed: UInt64 = 0) {
        self.parts = parts
        self.stratify = stratify
        self.seed = seed
    }

    /// The split names imgconv knows, in output order, and their tensor prefixes.
    public static let knownNames = ["train", "val", "test"]

    /// Parses `train=0.8,val=0.1,test=0.1` (fractions or percentages summing to 1 or 100).
    /// - Throws: `.invalidArgument` naming what is wrong.
    public static func parse(_ text: String, stratify: Bool, seed: UInt64) throws -> SplitPlan {
        var parts: [Part] = []
        for item in text.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
            guard kv.count == 2, let v = Double(kv[1]), v >= 0, v.isFinite else {
                throw ImgConvError(.invalidArgument, "--split: cannot read '\(item)' (name=fraction)")
            }
            guard knownNames.contains(kv[0]) else {
                throw ImgConvError(.invalidArgument, "--split: unknown split '\(kv[0])' (train, val, test)")
            }
            guard !parts.contains(where: { $0.name == kv[0] }) else {
                throw ImgConvError(.invalidArgument, "--split: '\(kv[0])' appears twice")
            }
            parts.append(Part(name: kv[0], fraction: v))
        }
        let total = parts.reduce(0) { $0 + $1.fraction }
        let scale = abs(total - 100) < 1e-6 ? 100.0 : 1.0
        guard !parts.isEmpty, abs(total / scale - 1) < 1e-6 else {
            throw ImgConvError(.invalidArgument, "--split: fractions add up to \(total), not 1 (or 100)")
        }
        parts = parts.map { Part(name: $0.name, fraction: $0.fraction / scale) }
        parts.sort { knownNames.firstIndex(of: $0.name)! < knownNames.firstIndex(of: $1.name)! }
        return SplitPlan(parts: parts, stratify: stratify, seed: seed)
    }

    /// Sizes of each part for `n` items: floors of n x fraction, the remainder going to the parts
    /// with the largest fractional parts (ties to the earlier part).
    public func counts(for n: Int) -> [Int] {
        let exact = parts.map { $0.fraction * Double(n) }
        var counts = exact.map { Int($0.rounded(.down)) }
        var left = n - counts.reduce(0, +)
        let order = exact.indices.sorted { (exact[$0] - Double(counts[$0]), -$0) > (exact[$1] - Double(counts[$1]), -$1) }
        var k = 0
        while left > 0 && !order.isEmpty {
            counts[order[k % order.count]] += 1
            left -= 1
            k += 1
        }
        return counts
    }

    /// The part index of each item, given the items' labels.
    public func assign(labels: [Int]) -> [Int] {
        var result = [Int](repeating: 0, count: labels.count)
        let groups: [[Int]]
        if stratify {
            var byLabel: [Int: [Int]] = [:]
            for (i, l) in labels.enumerated() { byLabel[l, default: []].append(i) }
            groups = byLabel.keys.sorted().map { byLabel[$0]! }
        } else {
            groups = [Array(labels.indices)]
        }
        var random = SeededShuffle(seed: seed)
        for group in groups {
            let shuffled = random.shuffled(group)
            // Each group draws from the same stream, one after another: still deterministic.
            for _ in 0..<group.count { _ = random.next() }
            var at = 0
            for (part, count) in counts(for: group.count).enumerated() {
                for i in shuffled[at..<(at + count)] { result[i] = part }
                at += count
            }
        }
        return result
    }
}

/// A split and its items (indices into the planned images), in output order.
public struct SplitPart: Sendable, Equatable {
    public var name: String
    public var items: [Int32]

    public init(name: String, items: [Int32]) {
        self.name = name
        self.items = items
    }
}

extension SplitPlan {
    /// Divides `count` images into parts: as the dataset says (`split(i)`, from split folders or
    /// a CSV's split column, when `onDisk`), else by `plan`, else one `train` part. Parts come in
    /// the order train, val, test; a shuffle seed shuffles within each. A plan divides files:
    /// the images of one file (the pages of a TIFF, the frames of an animation) go to one part,
    /// so no file is in two splits (with one image a file, this is dividing images).
    /// - Parameters:
    ///   - label: the class of image `i` (what a stratified plan divides by).
    ///   - file: the file of image `i` (images of one file are consecutive); nil: one file each.
    ///   - name: the file of image `i`, for messages.
    /// - Throws: `.invalidArgument` when a split dataset is split again, an image has no split
    ///   while others have one, or a split is not train, val or test.
    public static func parts(count: Int, label: (Int) -> Int, file: ((Int) -> Int)? = nil, split: (Int) -> String?, onDisk: Bool,
                             plan: SplitPlan?, shuffleSeed: UInt64?, name: (Int) -> String) throws -> [SplitPart] {
        let names = plan?.parts.map(\.name) ?? knownNames
        var assigned: [UInt8] = []   // index into `names`, per image
        assigned.reserveCapacity(count)
        if onDisk {
            if plan != nil {
                throw ImgConvError(.invalidArgument, "the dataset is already split (split folders or a split column); --split does not apply")
            }
            for i in 0..<count {
                guard let s = split(i) else {
                    throw ImgConvError(.invalidArgument, path: name(i), "has no split while others have one")
                }
                guard let k = names.firstIndex(of: s) else {
                    throw ImgConvError(.invalidArgument, path: name(i), "split '\(s)' is not train, val or test")
                }
                assigned.append(UInt8(k))
            }
        } else if let plan {
            // The first image of each file stands for the file.
            let firsts = (0..<count).filter { i in i == 0 || file.map { $0(i) != $0(i - 1) } ?? true }
            let byFile = plan.assign(labels: firsts.map(label))
            var k = -1
            for i in 0..<count {
                if k + 1 < firsts.count && firsts[k + 1] == i { k += 1 }
                assigned.append(UInt8(byFile[k]))
            }
        } else {
            assigned = Array(repeating: UInt8(names.firstIndex(of: "train")!), count: count)
        }
        var parts: [SplitPart] = []
        for (k, partName) in names.enumerated() {
            var items: [Int32] = []
            for (i, a) in assigned.enumerated() where a == k { items.append(Int32(i)) }
            if items.isEmpty && (onDisk || plan == nil) { continue }
            if let seed = shuffleSeed { items = SeededShuffle(seed: seed).shuffled(items) }
            parts.append(SplitPart(name: partName, items: items))
        }
        if parts.isEmpty { parts = [SplitPart(name: "train", items: [])] }
        return parts
    }
}
