import ImgConvCore
import ImgConvFormats

/// What an output's manifest is made of, gathered as its images are written: the conversion
/// (`Converter`) and `merge` (`ShardMerger`) both fill one and commit it with `commit`.
struct OutputManifest {
    /// The manifest's entry of each image, kept on disk past 256 KiB (flat memory).
    let entries: SpillBuffer
    var images = 0
    var counts: [Int]
    var rotated = 0
    /// Images per format (a few formats: a short list is cheaper per image than a dictionary).
    private var formatCounts: [(format: String, count: Int)] = []
    var formats: [String: Int] { Dictionary(formatCounts, uniquingKeysWith: +) }
    var splitSizes: [String: Int] = [:]
    var tensors: [Manifest.TensorRecord] = []

    init(writer: DatasetWriter, classCount: Int) {
        entries = SpillBuffer(directory: parentFolder(writer.manifestPath))
        counts = [Int](repeating: 0, count: classCount)
    }

    /// Adds the entry of the next image in tensor order.
    mutating func add(_ record: Manifest.FileRecord) throws {
        counts[record.label] += 1
        if let k = formatCounts.firstIndex(where: { $0.format == record.format }) {
            formatCounts[k].count += 1
        } else {
            formatCounts.append((record.format, 1))
        }
        if record.orientation != nil { rotated += 1 }
        let first = images == 0
        try entries.append { Manifest.appendFileEntry(record, first: first, to: &$0) }
        images += 1
    }

    /// What every output's manifest records besides its images.
    struct Frame {
        var root: String
        var kind: String
        var outputName: String
        var formatName: String
        var options: Manifest.Options
        var classNames: [String]
        var skipped: [SkippedFile]
        var warnings: [String]
        var ignoredPages: Int
        var ignoredFrames: Int
        var named: Bool
        var shard: Manifest.Shard?
        /// `check`'s report of the sources (`to-* --check`).
        var check: JSONValue? = nil
    }

    /// Writes the manifest in full (embedded too when the format holds it), then renames the
    /// writer's output and the manifest into place as one unit (`commitWithManifest`).
    func commit(_ writer: DatasetWriter, _ f: Frame) throws {
        // The output is complete: its last bytes go to disk while the manifest is made.
        try writer.startWriteback()
        var manifest = Manifest(
            tool: .init(name: ToolInfo.name, version: ToolInfo.version),
            source: .init(root: f.root, kind: f.kind),
            output: .init(format: f.formatName, name: f.outputName),
            options: f.options,
            classes: f.classNames.enumerated().map { .init(index: $0.offset, name: $0.element, count: counts[$0.offset]) },
            tensors: tensors, files: [], skipped: f.skipped, warnings: f.warnings,
            summary: .init(images: images, skipped: f.skipped.count, skippedByReason: [:],
                           rotated: rotated, ignoredTiffPages: f.ignoredPages))
        if f.named { manifest.summary.splits = splitSizes }
        manifest.summary.ignoredFrames = f.ignoredFrames
        manifest.summary.formats = formats
        manifest.summary.skippedByReason = Dictionary(grouping: f.skipped, by: { reasonKey($0.reason) }).mapValues(\.count)
        manifest.shard = f.shard
        manifest.check = f.check
        // [issue 4, HDF5] the manifest also goes inside the output (HDF5 attribute), so commit after it.
        // The manifest is written in full before the data replaces anything, so a failure
        // (a full disk) leaves the earlier output and its manifest together.
        let manifestFile = try AtomicOutputFile(target: writer.manifestPath)
        do {
            if writer.embedsManifest {
                var json: [UInt8] = []
                json.reserveCapacity(entries.byteCount + (64 << 10))
                try manifest.write(fileEntries: entries) { json += $0 }
                try writer.embedManifest(&json)
                try manifestFile.write(json)
            } else {
                try manifest.write(fileEntries: entries) { try manifestFile.write($0) }
            }
            try commitWithManifest(writer, manifestFile)
        } catch {
            manifestFile.abort()
            throw error
        }
    }
}
