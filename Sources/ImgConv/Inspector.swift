import FoundationEssentials
import Glibc
import ImgConvCore
import ImgConvFormats

/// What `inspect` found in a container.
public struct InspectionReport: Codable, Sendable {
    public struct Tensor: Codable, Sendable {
        public var name: String
        /// The member, file, dataset or attribute that holds it.
        public var storage: String
        public var shape: [Int]
        public var dtype: String
        public var compression: String
    }
    public struct ClassCount: Codable, Sendable {
        public var index: Int
        public var name: String
        public var count: Int
    }
    public struct ChannelStats: Codable, Sendable {
        public var channel: Int
        public var min: Double
        public var max: Double
        public var mean: Double
        /// Population standard deviation (numpy's `std()`), what `--mean`/`--std` take.
        public var std: Double
    }
    /// One images/labels pair.
    public struct Split: Codable, Sendable {
        /// `train`, `val`, `test`, ...
        public var name: String
        /// The images and labels tensors' names.
        public var images: String
        public var labels: String
        public var count: Int
        public var classes: [ClassCount]
        public var labelsOutOfRange: Int
        public var pixels: [ChannelStats]?
    }

    public var path: String
    public var format: String
    public var tensors: [Tensor]
    /// Where the class names come from: `container`, `manifest` or `none`.
    public var classNamesSource: String
    /// Counts over every split.
    public var classes: [ClassCount]
    /// Labels outside [0, classes), over every split.
    public var labelsOutOfRange: Int
    /// Images over every split.
    public var images: Int
    /// `index` or `onehot`.
    public var labelForm: String
    /// `nhwc` or `nchw`.
    public var layout: String
    /// Every pair, in the order train, val, test.
    public var splits: [Split]
    /// Per channel over every split (absent with `stats: false`; NaNs are left out).
    public var pixels: [ChannelStats]?
    /// The manifest that belongs to the container: its path, or the HDF5 attribute.
    public var manifest: String?
}

/// Describes a container without converting it: format, tensors (shape, dtype, compression),
/// class names and per-class counts, and, unless asked not to, the min, max and mean of every
/// channel of the images, in one streamed pass.
public struct Inspector {
    public var stats = true

    public init(stats: Bool = true) { self.stats = stats }

    /// - Throws: `ImgConvError` (`.notFound`, `.unsupported`, `.corruptInput`) naming the file.
    public func inspect(path: String, read: DatasetReadOptions = DatasetReadOptions()) throws -> InspectionReport {
        try inspect(LabeledDataset(path: path, options: read))
    }

    /// Describes an opened dataset: every split's counts and pixel statistics, and the totals.
    public func inspect(_ dataset: LabeledDataset) throws -> InspectionReport {
        let container = dataset.container
        let path = dataset.path
        var tensors: [InspectionReport.Tensor] = []
        for name in container.tensorNames {
            let (header, _) = try container.open(name)
            tensors.append(.init(name: name, storage: container.storageName(name), shape: header.shape,
                                 dtype: DType(npyDescr: header.descr)?.rawValue ?? header.descr,
                                 compression: try container.compression(of: name)))
        }
        let names = dataset.classNames
        var totalCounts = [Int](repeating: 0, count: names.count)
        var totalOut = 0
        var totalStats: [ChannelAccumulator]?
        var splits: [InspectionReport.Split] = []
        for split in dataset.splits {
            var counts = [Int](repeating: 0, count: names.count)
            var outOfRange = 0
            for l in try dataset.rawLabels(split) {
                if l >= 0 && l < names.count { counts[Int(l)] += 1 } else { outOfRange += 1 }
            }
            var pixels: [ChannelAccumulator]?
            if stats {
                let g = try dataset.geometry(split)
                let (_, stream) = try dataset.openImages(split)
                pixels = try channelStats(stream, dtype: g.dtype, channels: g.channels, plane: g.nchw ? g.height * g.width : 1,
                                          path: path, label: dataset.storageName(split.imagesName))
                if let p = pixels {
                    totalStats = totalStats.map { zip($0, p).map { $0.merged($1) } } ?? p
                    if totalStats?.count != p.count { totalStats = nil }
                }
            }
            for c in counts.indices { totalCounts[c] += counts[c] }
            totalOut += outOfRange
            splits.append(.init(name: split.name, images: split.imagesName, labels: split.labelsName, count: split.count,
                                classes: Self.classCounts(names, counts), labelsOutOfRange: outOfRange,
                                pixels: pixels.map { $0.enumerated().map { $0.element.report(channel: $0.offset) } }))
        }
        return InspectionReport(path: path, format: dataset.formatName, tensors: tensors, classNamesSource: dataset.classNamesSource,
                                classes: Self.classCounts(names, totalCounts), labelsOutOfRange: totalOut, images: dataset.imageCount,
                                labelForm: dataset.labelForm.rawValue, layout: dataset.nchw ? "nchw" : "nhwc", splits: splits,
                                pixels: totalStats.map { $0.enumerated().map { $0.element.report(channel: $0.offset) } },
                                manifest: dataset.manifestLocation)
    }

    private static func classCounts(_ names: [String], _ counts: [Int]) -> [InspectionReport.ClassCount] {
        names.enumerated().map { .init(index: $0.offset, name: $0.element, count: counts[$0.offset]) }
    }

    /// Min, max, mean and spread per channel. Element i is in channel `(i / plane) % channels`
    /// (plane = 1 for channels-last, H*W for channels-first).
    private func channelStats(_ stream: ByteStream, dtype: DType, channels: Int, plane: Int,
                              path: String, label: String) throws -> [ChannelAccumulator] {
        var acc = [ChannelAccumulator](repeating: ChannelAccumulator(), count: channels)
        let size = dtype.byteSize
        var scratch: [UInt8] = []
        var index = 0          // element index in the tensor
        // uint8 is the common case: integer counters, a histogram per channel.
        var histogram = dtype == .uint8 ? [[Int]](repeating: [Int](repeating: 0, count: 256), count: channels) : []
        // Whole elements at a time (a piece is short only at the end of the data); a stored
        // tensor is read where it lies (memory-mapped).
        while try stream.next((1 << 20) / size * size, scratch: &scratch, { raw in
            let whole = raw.count / size
            if dtype == .uint8 {
                for k in 0..<whole {
                    histogram[((index + k) / plane) % channels][Int(raw[k])] += 1
                }
            } else {
                for k in 0..<whole {
                    let v = dtype.value(in: raw, at: k * size)
                    guard !v.isNaN else { continue }
                    acc[((index + k) / plane) % channels].add(v)
                }
            }
            index += whole
            return raw.count
        }) > 0 {}
        if dtype == .uint8 {
            for c in 0..<channels { acc[c] = ChannelAccumulator(histogram: histogram[c]) }
        }
        return acc
    }
}

/// Count, extremes, mean and sum of squared deviations of one channel, updated one value at a time
/// (Welford) and merged across splits (Chan et al.), so the spread keeps its precision.
struct ChannelAccumulator {
    var count = 0
    var low = Double.infinity
    var high = -Double.infinity
    var mean = 0.0
    var squares = 0.0

    init() {}

    /// From a histogram of 8-bit values (exact sums).
    init(histogram: [Int]) {
        var total = 0, sum = 0
        for (v, n) in histogram.enumerated() where n > 0 {
            total += n
            sum += v * n
            low = min(low, Double(v))
            high = max(high, Double(v))
        }
        count = total
        guard total > 0 else { return }
        mean = Double(sum) / Double(total)
        for (v, n) in histogram.enumerated() where n > 0 {
            let d = Double(v) - mean
            squares += d * d * Double(n)
        }
    }

    mutating func add(_ v: Double) {
        count += 1
        if v < low { low = v }
        if v > high { high = v }
        let d = v - mean
        mean += d / Double(count)
        squares += d * (v - mean)
    }

    func merged(_ other: ChannelAccumulator) -> ChannelAccumulator {
        guard other.count > 0 else { return self }
        guard count > 0 else { return other }
        var m = ChannelAccumulator()
        m.count = count + other.count
        m.low = min(low, other.low)
        m.high = max(high, other.high)
        let d = other.mean - mean
        m.mean = mean + d * Double(other.count) / Double(m.count)
        m.squares = squares + other.squares + d * d * Double(count) * Double(other.count) / Double(m.count)
        return m
    }

    func report(channel: Int) -> InspectionReport.ChannelStats {
        count == 0 ? .init(channel: channel, min: 0, max: 0, mean: 0, std: 0)
            : .init(channel: channel, min: low, max: high, mean: mean, std: (squares / Double(count)).squareRoot())
    }
}
