import Foundation
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
    }

    public var path: String
    public var format: String
    public var tensors: [Tensor]
    /// Where the class names come from: `container`, `manifest` or `none`.
    public var classNamesSource: String
    public var classes: [ClassCount]
    /// Labels outside [0, classes).
    public var labelsOutOfRange: Int
    public var images: Int
    /// Per channel of `trainXs` (absent with `stats: false`; NaNs are left out).
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
    public func inspect(path: String, labels: String? = nil) throws -> InspectionReport {
        do {
            return try inspect(try openContainer(path, labels: labels))
        } catch let e as ImgConvError where e.path == nil {
            throw e.at(path)
        }
    }

    private func inspect(_ container: TensorContainer) throws -> InspectionReport {
        let path = container.path
        var tensors: [InspectionReport.Tensor] = []
        var shapes: [String: NPYHeader] = [:]
        var streams: [String: ByteStream] = [:]
        for name in container.tensorNames {
            let (header, stream) = try container.open(name)
            shapes[name] = header
            // Each tensor is opened once; the images and labels streams are read below.
            if name == "trainXs" || name == "trainYs" { streams[name] = stream }
            tensors.append(.init(name: name, storage: container.storageName(name), shape: header.shape,
                                 dtype: DType(npyDescr: header.descr)?.rawValue ?? header.descr,
                                 compression: try container.compression(of: name)))
        }
        var manifestNote: String?
        var manifest: Manifest?
        var st = stat()
        if stat(container.manifestPath, &st) == 0 {
            manifestNote = container.manifestPath
            manifest = try? Manifest.decode(try readFile(container.manifestPath), path: container.manifestPath)
        } else if let embedded = try container.embeddedManifest() {
            manifestNote = "attribute '\(HDF5Writer.manifestAttribute)'"
            manifest = try? Manifest.decode(embedded, path: path)
        }

        var labelValues: [Int64] = []
        if let header = shapes["trainYs"], header.shape.count == 1, let dtype = DType(npyDescr: header.descr), !dtype.isFloatingPoint {
            labelValues = try readIntegers(streams["trainYs"]!, dtype: dtype, count: header.shape[0], path: path, label: container.storageName("trainYs"))
        }
        var names: [String]
        var source: String
        if let n = try container.classNames() {
            (names, source) = (n, "container")
        } else if let manifest {
            (names, source) = (manifest.classes.map(\.name), "manifest")
        } else {
            (names, source) = ((0..<Int((labelValues.max() ?? -1) + 1)).map(String.init), "none")
        }
        var counts = [Int](repeating: 0, count: names.count)
        var outOfRange = 0
        for l in labelValues {
            if l >= 0 && l < names.count { counts[Int(l)] += 1 } else { outOfRange += 1 }
        }

        var pixels: [InspectionReport.ChannelStats]?
        let images = shapes["trainXs"]?.shape.first ?? 0
        if stats, let header = shapes["trainXs"], let dtype = DType(npyDescr: header.descr), header.shape.count >= 2 {
            let nchw = manifest?.options.layout == "nchw" && header.shape.count == 4
            let channels = header.shape.count == 4 ? (nchw ? header.shape[1] : header.shape[3]) : 1
            let plane = nchw ? header.shape[2] * header.shape[3] : 1
            pixels = try channelStats(streams["trainXs"]!, dtype: dtype, channels: channels, plane: plane, path: path,
                                      label: container.storageName("trainXs"))
        }
        return InspectionReport(path: path, format: container.formatName, tensors: tensors, classNamesSource: source,
                                classes: names.enumerated().map { .init(index: $0.offset, name: $0.element, count: counts[$0.offset]) },
                                labelsOutOfRange: outOfRange, images: images, pixels: pixels, manifest: manifestNote)
    }

    /// Min, max and mean per channel. Element i is in channel `(i / plane) % channels` (plane = 1
    /// for channels-last, H*W for channels-first).
    private func channelStats(_ stream: ByteStream, dtype: DType, channels: Int, plane: Int,
                              path: String, label: String) throws -> [InspectionReport.ChannelStats] {
        var mins = [Double](repeating: .infinity, count: channels)
        var maxs = [Double](repeating: -.infinity, count: channels)
        var sums = [Double](repeating: 0, count: channels)
        var counts = [Int](repeating: 0, count: channels)
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
                    let c = ((index + k) / plane) % channels
                    if v < mins[c] { mins[c] = v }
                    if v > maxs[c] { maxs[c] = v }
                    sums[c] += v
                    counts[c] += 1
                }
            }
            index += whole
            return raw.count
        }) > 0 {}
        if dtype == .uint8 {
            for c in 0..<channels {
                for (v, count) in histogram[c].enumerated() where count > 0 {
                    mins[c] = min(mins[c], Double(v))
                    maxs[c] = max(maxs[c], Double(v))
                    sums[c] += Double(v) * Double(count)
                    counts[c] += count
                }
            }
        }
        return (0..<channels).map { c in
            counts[c] == 0 ? .init(channel: c, min: 0, max: 0, mean: 0)
                : .init(channel: c, min: mins[c], max: maxs[c], mean: sums[c] / Double(counts[c]))
        }
    }
}
