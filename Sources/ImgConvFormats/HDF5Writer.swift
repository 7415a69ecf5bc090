#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import ImgConvCore

/// Writes an HDF5 file (through libhdf5) that h5py opens: datasets `/trainXs` (N, H, W, C) and
/// `/trainYs` (N,) int64, the class names as the root attribute `classNames` (variable-length
/// UTF-8 strings, which h5py returns as `str`), and the manifest as the root attribute
/// `imgconv_manifest` (see `embedManifest`).
///
/// Both datasets are chunked along N and extendible (N unlimited): images stream in a chunk at a
/// time, so memory holds at most one chunk. A chunk is one image when an image is 32 KiB or more,
/// else as many images as make 256 KiB or just over (never more than the planned count).
/// `compress` adds the shuffle and gzip filters (`level` 0-9), as h5py's
/// `compression="gzip", shuffle=True`.
///
/// The file is written under a temporary name beside the target and renamed by `commit()`;
/// modification times are not stored, so the same input gives the same bytes.
public final class HDF5Writer: DatasetWriter {
    public let path: String
    public let compress: Bool
    public let level: Int
    public var names = TensorNames()
    public var labelEncoding = LabelEncoding()

    private var output: TemporaryOutputPath?
    private var handles: HDF5Handles?
    private var file: hid_t = -1
    private var images: hid_t = -1
    private var layout = TensorLayout(dtype: .uint8, itemShape: [])
    private var imagesPerChunk = 1
    private var pending: [UInt8] = []
    private var pendingCount = 0
    private var written = 0
    private var hash = BackgroundDigest()
    /// With `compress`: chunks are shuffled and deflated on every core, then written whole
    /// (H5Dwrite_chunk) in order from the HDF5 thread.
    public var threads = 1
    private var compressor: OrderedWork<(index: Int, count: Int, bytes: [UInt8])>?
    private var chunksSubmitted = 0

    /// A source of a virtual images dataset: `rows` images of dataset `dataset` in `file` (a
    /// path relative to this file's folder).
    public struct VirtualSource: Sendable, Equatable {
        public var file: String
        public var dataset: String
        public var rows: Int

        public init(file: String, dataset: String, rows: Int) {
            self.file = file
            self.dataset = dataset
            self.rows = rows
        }
    }

    /// Set before `begin` (`merge --virtual`): the split's images are not stored but mapped, in
    /// order, onto these sources (a virtual dataset); the images appended are only hashed, for
    /// the manifest, and must be the sources' images. nil: images are stored.
    public var virtualSources: [VirtualSource]?

    public static let manifestAttribute = "imgconv_manifest"
    public static let classNamesAttribute = "classNames"

    public init(path: String, compress: Bool = false, level: Int = 4) {
        self.path = path
        self.compress = compress
        self.level = level
    }

    public var manifestPath: String { path + ".manifest.json" }
    public var outputFiles: [String] { [path, manifestPath] }

    public func checkTargets() throws {
        try checkOutputFileTarget(path)
        try checkOutputFileTarget(manifestPath)
    }

    private var ctx: HDF5Context { HDF5Context(path: path, code: .io) }

    deinit { abort() }

    /// Images per chunk for images of `bytesPerImage` (see the type's documentation).
    public static func imagesPerChunk(bytesPerImage: Int, planned: Int) -> Int {
        guard bytesPerImage > 0, bytesPerImage < 32 << 10 else { return 1 }
        let k = (256 << 10 + bytesPerImage - 1) / bytesPerImage
        return max(1, min(k, planned))
    }

    public func begin(images layout: TensorLayout, count: Int) throws {
        self.layout = layout
        imagesPerChunk = Self.imagesPerChunk(bytesPerImage: layout.bytesPerItem, planned: count)
        pending.removeAll(keepingCapacity: true)
        // Grows as images arrive: the layout of an input's header is no reason to allocate.
        pending.reserveCapacity(min(imagesPerChunk * layout.bytesPerItem, 4 << 20))
        pendingCount = 0
        written = 0
        hash = BackgroundDigest()
        do {
            if handles == nil { try openFile() }
            if virtualSources != nil { return }
            try HDF5.run {
                images = try createDataset(names.images, dtype: layout.dtype, itemShape: layout.itemShape,
                                           chunkItems: imagesPerChunk, handles: handles!)
            }
        } catch {
            abort()
            throw error
        }
    }

    private func openFile() throws {
        let output = try TemporaryOutputPath(target: path)
        self.output = output
        try HDF5.run {
            let handles = HDF5Handles()
            self.handles = handles
            let ctx = self.ctx
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            // No modification times (reproducible bytes); a format that allows attributes
            // over 64 KiB (the manifest) and is still readable by HDF5 1.8 and later.
            let fcpl = scope.own(try ctx.check(H5Pcreate(imc_h5p_file_create()), "create a file-creation property list"), .propertyList)
            try ctx.check(H5Pset_obj_track_times(fcpl, false), "turn off modification times")
            let fapl = scope.own(try ctx.check(H5Pcreate(imc_h5p_file_access()), "create a file-access property list"), .propertyList)
            try ctx.check(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110), "set the format version bounds")
            file = handles.own(try ctx.check(H5Fcreate(output.temporaryPath, imc_h5f_acc_trunc(), fcpl, fapl), "create the file"), .file)
        }
    }

    /// A chunked dataset of zero items, extendible along its first axis.
    private func createDataset(_ name: String, dtype: DType, itemShape: [Int], chunkItems: Int, handles: HDF5Handles) throws -> hid_t {
        let ctx = self.ctx
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        let rank = Int32(1 + itemShape.count)
        var dims = [hsize_t(0)] + itemShape.map { hsize_t($0) }
        var maxDims = [imc_h5s_unlimited()] + itemShape.map { hsize_t($0) }
        var chunk = [hsize_t(chunkItems)] + itemShape.map { hsize_t(max(1, $0)) }
        let space = scope.own(try ctx.check(H5Screate_simple(rank, &dims, &maxDims), "create the dataspace of '/\(name)'"), .dataspace)
        let dcpl = scope.own(try ctx.check(H5Pcreate(imc_h5p_dataset_create()), "create a dataset-creation property list"), .propertyList)
        try ctx.check(H5Pset_chunk(dcpl, rank, &chunk), "set the chunks of '/\(name)'")
        try ctx.check(H5Pset_obj_track_times(dcpl, false), "turn off modification times")
        if compress {
            try ctx.check(H5Pset_shuffle(dcpl), "add the shuffle filter")
            try ctx.check(H5Pset_deflate(dcpl, UInt32(level)), "add the gzip filter")
        }
        let id = try ctx.check(H5Dcreate2(file, name, HDF5Types.type(for: dtype), space, imc_h5p_default(), dcpl, imc_h5p_default()),
                               "create the dataset '/\(name)'")
        return handles.own(id, .dataset)
    }

    /// Grows a dataset by `count` items and writes them (C order, the dataset's own type).
    private func appendItems(_ dataset: hid_t, name: String, at start: Int, count: Int, itemShape: [Int], dtype: DType,
                             bytes: UnsafeRawPointer) throws {
        let ctx = self.ctx
        try HDF5.run {
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            let rank = Int32(1 + itemShape.count)
            var size = [hsize_t(start + count)] + itemShape.map { hsize_t($0) }
            try ctx.check(H5Dset_extent(dataset, &size), "extend '/\(name)' to \(start + count) items")
            let fileSpace = scope.own(try ctx.check(H5Dget_space(dataset), "get the dataspace of '/\(name)'"), .dataspace)
            var offset = [hsize_t(start)] + itemShape.map { _ in hsize_t(0) }
            var block = [hsize_t(count)] + itemShape.map { hsize_t($0) }
            try ctx.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &offset, nil, &block, nil), "select items of '/\(name)'")
            let memSpace = scope.own(try ctx.check(H5Screate_simple(rank, &block, nil), "create a memory dataspace"), .dataspace)
            try ctx.check(H5Dwrite(dataset, HDF5Types.type(for: dtype), memSpace, fileSpace, imc_h5p_default(), bytes),
                          "write items \(start)..<\(start + count) of '/\(name)'")
        }
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        precondition(image.count == layout.bytesPerItem, "image size")
        if virtualSources != nil {
            hash.update(image)
            written += 1
            return
        }
        if compress {
            hash.update(image)
            pending.append(contentsOf: image)
            pendingCount += 1
            if pendingCount == imagesPerChunk { try submitChunk() }
            return
        }
        // Hashed with its batch, while the batch is written (`flushPending`).
        pending.append(contentsOf: image)
        pendingCount += 1
        if pendingCount == imagesPerChunk * Self.chunksPerBatch(chunkBytes: imagesPerChunk * layout.bytesPerItem) {
            try flushPending()
        }
    }

    /// A block of images (a merge copies about 8 MiB at a time): each batch it completes is
    /// written straight from the block, after the batch's images already pending (copied only up
    /// to a whole chunk); what is left after the last complete batch is kept pending. The calls
    /// made to libhdf5 are the ones `append(image:)` makes for the same images (the same extents,
    /// the same chunks in the same order), so the file is the same.
    public func append(images block: UnsafeRawBufferPointer, count: Int) throws {
        let item = layout.bytesPerItem
        precondition(block.count == count * item, "block size")
        guard virtualSources == nil, !compress else {
            for k in 0..<count { try append(image: UnsafeRawBufferPointer(rebasing: block[(k * item)..<((k + 1) * item)])) }
            return
        }
        let batch = imagesPerChunk * Self.chunksPerBatch(chunkBytes: imagesPerChunk * item)
        var i = 0
        while i < count {
            let need = batch - pendingCount
            guard count - i >= need else {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: block[(i * item)..<(count * item)]))
                pendingCount += count - i
                return
            }
            // Pending images up to a whole chunk, then whole chunks from the block.
            let toChunk = (imagesPerChunk - pendingCount % imagesPerChunk) % imagesPerChunk
            if pendingCount > 0 && toChunk > 0 {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: block[(i * item)..<((i + toChunk) * item)]))
            }
            let headCount = pendingCount > 0 ? pendingCount + toChunk : 0
            let from = i + (pendingCount > 0 ? toChunk : 0)
            let direct = UnsafeRawBufferPointer(rebasing: block[(from * item)..<((i + need) * item)])
            try pending.withUnsafeBytes { head in
                let headBytes = UnsafeRawBufferPointer(rebasing: head[0..<(headCount * item)])
                if headCount > 0 { hash.update(headBytes) }
                try hash.update(direct, alongside: { try writeStoredChunks([headBytes, direct], count: batch) })
            }
            output?.startWriteback()
            written += batch
            pendingCount = 0
            pending.removeAll(keepingCapacity: true)
            i += need
        }
    }

    /// Whole chunks written by one call to the HDF5 thread (about 4 MiB): a call per image was
    /// a thread round trip and a hyperslab write each. The batches depend only on the image
    /// count, so every run that appends the same images writes the same file.
    static func chunksPerBatch(chunkBytes: Int) -> Int { max(1, (4 << 20) / max(1, chunkBytes)) }

    /// Shuffles and deflates the pending images as one chunk on another thread (edge chunks are
    /// padded to the full chunk size, as HDF5 requires), writing finished chunks in order.
    private func submitChunk() throws {
        guard pendingCount > 0 else { return }
        if compressor == nil { compressor = OrderedWork(limit: max(2, threads * 2)) }
        var chunk = pending
        chunk.append(contentsOf: [UInt8](repeating: 0, count: (imagesPerChunk - pendingCount) * layout.bytesPerItem))
        let index = chunksSubmitted, count = pendingCount, elementSize = layout.dtype.byteSize, level = Int32(self.level)
        chunksSubmitted += 1
        pendingCount = 0
        pending.removeAll(keepingCapacity: true)
        try compressor!.submit({ (index, count, try Self.filter(chunk, elementSize: elementSize, level: level)) },
                               deliver: writeChunk)
    }

    /// HDF5's shuffle filter (byte planes) then its deflate filter (a zlib stream).
    static func filter(_ data: [UInt8], elementSize: Int, level: Int32) throws -> [UInt8] {
        var shuffled = data
        if elementSize > 1 {
            let n = data.count / elementSize
            for i in 0..<n {
                for b in 0..<elementSize { shuffled[b * n + i] = data[i * elementSize + b] }
            }
        }
        return try zlibCompress(shuffled, level: level)
    }

    private func writeChunk(_ chunk: (index: Int, count: Int, bytes: [UInt8])) throws {
        let ctx = self.ctx
        let start = chunk.index * imagesPerChunk
        let rank = 1 + layout.itemShape.count
        try HDF5.run {
            var size = [hsize_t(start + chunk.count)] + layout.itemShape.map { hsize_t($0) }
            try ctx.check(H5Dset_extent(images, &size), "extend '/\(names.images)' to \(start + chunk.count) items")
            var offset = [hsize_t(start)] + [hsize_t](repeating: 0, count: rank - 1)
            _ = try chunk.bytes.withUnsafeBytes { buf in
                try ctx.check(H5Dwrite_chunk(images, imc_h5p_default(), 0, &offset, buf.count, buf.baseAddress),
                              "write the chunk at item \(start) of '/\(names.images)'")
            }
        }
        written = start + chunk.count
        output?.startWriteback()
    }

    private func flushPending() throws {
        if compress {
            try submitChunk()
            try compressor?.finish(deliver: writeChunk)
            compressor = nil
            chunksSubmitted = 0
            return
        }
        guard pendingCount > 0 else { return }
        let imageBytes = pendingCount * layout.bytesPerItem
        // A last partial chunk is padded with zeros, as HDF5 stores it (not hashed: not data).
        let padding = (imagesPerChunk - pendingCount % imagesPerChunk) % imagesPerChunk * layout.bytesPerItem
        if padding > 0 { pending.append(contentsOf: repeatElement(0, count: padding)) }
        let count = pendingCount
        try pending.withUnsafeBytes { buf in
            try hash.update(UnsafeRawBufferPointer(rebasing: buf[0..<imageBytes]), alongside: { try writeStoredChunks([buf], count: count) })
        }
        output?.startWriteback()
        written += pendingCount
        pendingCount = 0
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes `count` images from `pieces` (whole chunks each, in order) as chunks
    /// (H5Dwrite_chunk, no filters: the chunk's bytes are the images' bytes), growing the dataset
    /// once for all of them.
    private func writeStoredChunks(_ pieces: [UnsafeRawBufferPointer], count: Int) throws {
        let chunkBytes = imagesPerChunk * layout.bytesPerItem
        let ctx = self.ctx, images = self.images, name = names.images, start = written
        let rank = 1 + layout.itemShape.count
        var size = [hsize_t(start + count)] + layout.itemShape.map { hsize_t($0) }
        try HDF5.run {
            try ctx.check(H5Dset_extent(images, &size), "extend '/\(name)' to \(start + count) items")
            var done = 0
            for buf in pieces {
                var at = 0
                while at < buf.count {
                    let item = start + (done + at) / layout.bytesPerItem
                    var offset = [hsize_t(item)] + [hsize_t](repeating: 0, count: rank - 1)
                    try ctx.check(H5Dwrite_chunk(images, imc_h5p_default(), 0, &offset, chunkBytes, buf.baseAddress! + at),
                                  "write the chunk at item \(item) of '/\(name)'")
                    at += chunkBytes
                }
                done += buf.count
            }
        }
    }

    public func endPart(labels: LabelColumn) throws -> [Manifest.TensorRecord] {
        if let sources = virtualSources {
            try HDF5.run { try createVirtualImages(sources) }
        } else {
            try flushPending()
        }
        precondition(labels.count == written, "one label per image")
        let dtype = labelEncoding.dtype ?? .int64
        let (itemShape, data) = try labelEncoding.encode(labels, dtype: dtype)
        let labelsChunk = max(1, min(labels.count, 32768))
        let labelsID = try HDF5.run {
            try createDataset(names.labels, dtype: dtype, itemShape: itemShape, chunkItems: labelsChunk, handles: handles!)
        }
        if !labels.isEmpty {
            try data.withUnsafeBytes { buf in
                try appendItems(labelsID, name: names.labels, at: 0, count: labels.count, itemShape: itemShape, dtype: dtype,
                                bytes: buf.baseAddress!)
            }
        }
        return [
            Manifest.TensorRecord(name: names.images, shape: layout.shape(count: written), dtype: layout.dtype.rawValue,
                                  digest: hash.finish().digest),
            Manifest.TensorRecord(name: names.labels, shape: [labels.count] + itemShape, dtype: dtype.rawValue, digest: tensorDigest(data)),
        ]
    }

    /// The images dataset as a virtual dataset over `sources`, one after another along N (SCALE
    /// facts: a hyperslab of the virtual space per source, each source's whole dataset).
    private func createVirtualImages(_ sources: [VirtualSource]) throws {
        let ctx = self.ctx, name = names.images
        guard sources.reduce(0, { $0 + $1.rows }) == written else {
            throw ctx.fail("virtual dataset '/\(name)': the sources hold \(sources.reduce(0) { $0 + $1.rows }) images, \(written) were given")
        }
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        let itemShape = layout.itemShape.map { hsize_t($0) }
        let rank = Int32(1 + itemShape.count)
        var dims = [hsize_t(written)] + itemShape
        let space = scope.own(try ctx.check(H5Screate_simple(rank, &dims, nil), "create the dataspace of '/\(name)'"), .dataspace)
        let dcpl = scope.own(try ctx.check(H5Pcreate(imc_h5p_dataset_create()), "create a dataset-creation property list"), .propertyList)
        try ctx.check(H5Pset_obj_track_times(dcpl, false), "turn off modification times")
        var at = 0
        for source in sources where source.rows > 0 {
            var start = [hsize_t(at)] + itemShape.map { _ in hsize_t(0) }
            var count = [hsize_t](repeating: 1, count: Int(rank))
            var block = [hsize_t(source.rows)] + itemShape
            try ctx.check(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nil, &count, &block), "select the rows of '\(source.file)'")
            let sourceSpace = scope.own(try ctx.check(H5Screate_simple(rank, &block, nil), "create the dataspace of '\(source.file)'"), .dataspace)
            try ctx.check(H5Pset_virtual(dcpl, space, source.file, source.dataset, sourceSpace), "map '\(source.file)' into '/\(name)'")
            at += source.rows
        }
        try ctx.check(H5Sselect_all(space), "select all of '/\(name)'")
        _ = handles!.own(try ctx.check(H5Dcreate2(file, name, HDF5Types.type(for: layout.dtype), space, imc_h5p_default(), dcpl,
                                                  imc_h5p_default()), "create the virtual dataset '/\(name)'"), .dataset)
    }

    public func finish(classNames: [String]) throws -> [Manifest.TensorRecord] {
        try HDF5.run { try writeStrings(classNames, attribute: Self.classNamesAttribute, scalar: false) }
        // The attribute reads back as this numpy array (`<U` strings), whose bytes are hashed.
        let (namesHeader, namesData) = SmallArrays.classNames(classNames)
        return [SmallArrays.record(names.classNames, namesHeader, namesData)]
    }

    /// Writes strings as a root attribute of variable-length UTF-8 strings: one (scalar) or an
    /// array. An existing attribute of that name is replaced.
    private func writeStrings(_ strings: [String], attribute: String, scalar: Bool) throws {
        try writeStrings(strings.map { Array($0.utf8) }, attribute: attribute, scalar: scalar)
    }

    /// Writes UTF-8 strings (given as bytes, without NUL) as a variable-length string attribute.
    private func writeStrings(_ strings: [[UInt8]], attribute: String, scalar: Bool) throws {
        // NUL-terminated copies for HDF5.
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { bytes in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            bytes.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            p[bytes.count] = 0
            return p
        }
        defer { pointers.forEach { $0?.deallocate() } }
        try pointers.withUnsafeMutableBufferPointer { buf in
            try writeStrings(buf.baseAddress!, count: strings.count, attribute: attribute, scalar: scalar)
        }
    }

    /// Writes `count` NUL-terminated UTF-8 strings as a variable-length string attribute (a
    /// scalar when `scalar`, else one dimension of `count`).
    private func writeStrings(_ strings: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, count: Int,
                              attribute: String, scalar: Bool) throws {
        let ctx = self.ctx
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        if try ctx.check(H5Aexists(file, attribute), "look for the attribute '\(attribute)'") > 0 {
            try ctx.check(H5Adelete(file, attribute), "replace the attribute '\(attribute)'")
        }
        let type = try HDF5Types.makeVariableString(ctx, scope)
        var dims = [hsize_t(count)]
        let space = scalar
            ? scope.own(try ctx.check(H5Screate(H5S_SCALAR), "create a scalar dataspace"), .dataspace)
            : scope.own(try ctx.check(H5Screate_simple(1, &dims, nil), "create the dataspace of '\(attribute)'"), .dataspace)
        let attr = scope.own(try ctx.check(H5Acreate2(file, attribute, type, space, imc_h5p_default(), imc_h5p_default()),
                                           "create the attribute '\(attribute)'"), .attribute)
        try ctx.check(H5Awrite(attr, type, strings), "write the attribute '\(attribute)'")
    }

    public var embedsManifest: Bool { true }

    /// Stores the manifest as the root attribute `imgconv_manifest` (one UTF-8 string). HDF5
    /// reads it NUL-terminated: the NUL is added to `json` for the call and removed after, so a
    /// manifest of megabytes is not copied here (libhdf5 keeps its own copies).
    public func embedManifest(_ json: inout [UInt8]) throws {
        guard handles != nil else { preconditionFailure("embedManifest before begin") }
        json.append(0)
        defer { json.removeLast() }
        try json.withUnsafeMutableBytes { buf in
            var string: UnsafeMutablePointer<CChar>? = buf.baseAddress!.assumingMemoryBound(to: CChar.self)
            try HDF5.run { try writeStrings(&string, count: 1, attribute: Self.manifestAttribute, scalar: true) }
        }
    }

    public func commit() throws {
        guard let output else { preconditionFailure("commit before begin") }
        let ctx = self.ctx
        self.output = nil
        do {
            try HDF5.run {
                let status = handles?.closeAll() ?? 0
                handles = nil
                try ctx.check(status, "close the file")
            }
        } catch {
            output.abort()
            throw error
        }
        try output.commit()
    }

    public func abort() {
        if let handles {
            _ = try? HDF5.run { handles.closeAll() }
            self.handles = nil
        }
        output?.abort()
        output = nil
        compressor = nil
        chunksSubmitted = 0
    }
}
