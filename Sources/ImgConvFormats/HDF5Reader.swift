#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import ImgConvCore

/// Reads an HDF5 file as a tensor container: every numeric dataset of the root group by its name
/// (`trainXs`, `trainYs`...), and the class names from the root attribute `classNames` (or a
/// string dataset `/classNames`), which reads as a numpy `<U` array like an `.npz` member. Data
/// streams a few chunks at a time, converted by HDF5 to little-endian.
public final class HDF5Reader: TensorContainer {
    public let path: String
    public var formatName: String { "h5" }
    public var manifestPath: String { path + ".manifest.json" }
    private let handles = HDF5Handles()
    private var file: hid_t = -1
    /// Numeric and string datasets of the root group, in name order.
    public private(set) var datasetNames: [String] = []
    private var hasClassNamesAttribute = false
    /// Root links to objects in other files (refused: they would read outside this file).
    private var externalLinks = Set<String>()

    private var ctx: HDF5Context { HDF5Context(path: path, code: .corruptInput) }

    /// - Throws: `.corruptInput` with HDF5's reason when the file cannot be opened.
    public init(path: String) throws {
        self.path = path
        try Self.checkSuperblock(path)
        try HDF5.run(reading: path) {
            let ctx = self.ctx
            file = handles.own(try ctx.check(H5Fopen(path, imc_h5f_acc_rdonly(), imc_h5p_default()), "open the file"), .file)
            var info = H5G_info_t()
            try ctx.check(H5Gget_info(file, &info), "list the root group")
            for i in 0..<info.nlinks {
                let length = try ctx.check(H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, imc_h5p_default()),
                                           "read the name of link \(i)")
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                try ctx.check(H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count, imc_h5p_default()),
                              "read the name of link \(i)")
                let name = stringFromCBuffer(buffer)
                // An external link would open another file: it is listed, and refused when opened.
                var link = H5L_info_t()
                try ctx.check(H5Lget_info_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, &link, imc_h5p_default()),
                              "read link '\(name)'")
                if link.type == H5L_TYPE_EXTERNAL {
                    externalLinks.insert(name)
                    datasetNames.append(name)
                    continue
                }
                // Only objects that resolve (not dangling links) and are datasets.
                let object = H5Oopen(file, name, imc_h5p_default())
                if object < 0 { _ = HDF5.takeErrorStack(); continue }
                if H5Iget_type(object) == H5I_DATASET { datasetNames.append(name) }
                _ = H5Oclose(object)
            }
            hasClassNamesAttribute = try ctx.check(H5Aexists(file, HDF5Writer.classNamesAttribute), "look for the class names") > 0
        }
    }

    private static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Where the superblock starts: HDF5's signature at the start of the file or of a user block
    /// (512, 1024, 2048... bytes), as libhdf5 looks for it.
    private static func superblockOffset(_ file: ReadOnlyFile) -> Int? {
        var offset = 0
        while offset + 8 <= file.size {
            if (try? file.read(at: offset, count: 8)) == signature { return offset }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    public static func hasSignature(_ path: String) -> Bool {
        guard let file = try? ReadOnlyFile(path: path) else { return false }
        return superblockOffset(file) != nil
    }

    /// Checks what libhdf5 would trust in a version 0 or 1 superblock before it is handed the
    /// file: the sizes of addresses and lengths, and that there is no driver information block
    /// (written only by the multi-file drivers, which imgconv does not open; libhdf5 sizes an
    /// allocation from that block's length field, and a damaged one cost gigabytes of memory for
    /// a 62-byte file). Later superblock versions have no such field here.
    /// - Throws: `.corruptInput` or `.unsupported` naming the file.
    static func checkSuperblock(_ path: String) throws {
        let file = try ReadOnlyFile(path: path)
        guard let base = superblockOffset(file) else { return }   // libhdf5 says what is wrong
        let head = try file.read(at: base, count: 128)
        guard head.count >= 16, head[8] <= 1 else { return }
        let offsets = Int(head[13]), lengths = Int(head[14])
        guard [2, 4, 8, 16, 32].contains(offsets), [2, 4, 8, 16, 32].contains(lengths) else {
            throw ImgConvError(.corruptInput, path: path, "HDF5 superblock: sizes of offsets \(offsets) and lengths \(lengths) are not 2, 4, 8, 16 or 32")
        }
        let driverField = (head[8] == 0 ? 24 : 28) + 3 * offsets
        guard head.count >= driverField + offsets else {
            throw ImgConvError(.corruptInput, path: path, "HDF5 superblock is cut short (\(file.size - base) bytes)")
        }
        if head[driverField..<(driverField + offsets)].contains(where: { $0 != 0xFF }) {
            throw ImgConvError(.unsupported, path: path,
                               "HDF5 file has a driver information block (a multi-file or family driver's file): not supported")
        }
    }

    public var tensorNames: [String] {
        hasClassNamesAttribute && !datasetNames.contains("classNames") ? datasetNames + ["classNames"] : datasetNames
    }

    public func storageName(_ name: String) -> String {
        name == "classNames" && !datasetNames.contains(name) ? "attribute '/classNames'" : "dataset '/\(name)'"
    }

    private func missing(_ name: String) -> ImgConvError {
        let present = datasetNames.isEmpty ? "no datasets" : datasetNames.map { "/" + $0 }.joined(separator: ", ")
        return ImgConvError(.corruptInput, path: path, "HDF5: dataset '/\(name)' is missing (the file holds \(present))")
    }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        if name == "classNames" {
            guard let names = try classNames() else { throw missing(name) }
            let (header, data) = SmallArrays.classNames(names)
            return (header, BytesStream(data))
        }
        guard datasetNames.contains(name) else { throw missing(name) }
        guard !externalLinks.contains(name) else {
            throw ImgConvError(.unsupported, path: path, "HDF5: '/\(name)' is an external link to another file (refused: only data stored in this file is read)")
        }
        return try HDF5.run(reading: path) {
            let ctx = self.ctx
            let handles = HDF5Handles()
            // Virtual datasets resolve their sources beside this file, never from the working folder.
            let dapl = handles.own(try ctx.check(H5Pcreate(imc_h5p_dataset_access()), "create a dataset access list"), .propertyList)
            try ctx.check(H5Pset_virtual_prefix(dapl, parentFolder(path) + "/"), "set the virtual dataset prefix")
            let dataset = handles.own(try ctx.check(H5Dopen2(file, name, dapl), "open the dataset '/\(name)'"), .dataset)
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            let type = scope.own(try ctx.check(H5Dget_type(dataset), "read the type of '/\(name)'"), .datatype)
            guard let dtype = HDF5Types.dtype(of: type) else {
                throw ImgConvError(.unsupported, path: path, "HDF5: dataset '/\(name)' has a type imgconv does not read (class \(H5Tget_class(type).rawValue), \(H5Tget_size(type)) bytes)")
            }
            let space = scope.own(try ctx.check(H5Dget_space(dataset), "read the shape of '/\(name)'"), .dataspace)
            let rank = Int(try ctx.check(H5Sget_simple_extent_ndims(space), "read the rank of '/\(name)'"))
            var dims = [hsize_t](repeating: 0, count: rank)
            try ctx.check(H5Sget_simple_extent_dims(space, &dims, nil), "read the shape of '/\(name)'")
            let shape = dims.map { Int($0) }
            guard checkedByteCount(shape, elementSize: dtype.byteSize) != nil else {
                throw ImgConvError(.corruptInput, path: path, "HDF5: dataset '/\(name)': shape \(shape) overflows")
            }
            var chunkRows = 1
            var rawChunks = false
            let dcpl = scope.own(try ctx.check(H5Dget_create_plist(dataset), "read the layout of '/\(name)'"), .propertyList)
            try checkStorage(dataset, dcpl: dcpl, name: name, shape: shape, elementSize: dtype.byteSize)
            if H5Pget_layout(dcpl) == H5D_CHUNKED && rank > 0 {
                var chunk = [hsize_t](repeating: 0, count: rank)
                if H5Pget_chunk(dcpl, Int32(rank), &chunk) == Int32(rank) {
                    chunkRows = max(1, Int(chunk[0]))
                    // Chunks of whole items, stored as they are, in the type imgconv reads them
                    // as: their bytes are the data's (what imgconv's writer makes).
                    rawChunks = chunk.dropFirst().map { Int($0) } == Array(shape.dropFirst()) && H5Pget_nfilters(dcpl) == 0
                        && H5Tequal(type, HDF5Types.type(for: dtype)) > 0
                }
            }
            // Raw chunks are lent from a mapping of the file where they lie one after another.
            let mapped = rawChunks ? Self.mappableFile(path).map { MappedWindow(file: $0, limit: $0.size) } : nil
            let stream = HDF5DatasetStream(handles: handles, dataset: dataset, name: name, dtype: dtype, shape: shape,
                                           chunkRows: chunkRows, rawChunks: rawChunks, mapped: mapped, ctx: ctx)
            return (NPYHeader(descr: dtype.npyDescr, shape: shape), stream)
        }
    }

    /// The file, opened for mapping its chunks, when libhdf5's addresses are offsets in it: its
    /// superblock is at offset 0. A file with a user block (the superblock at 512, 1024, ...)
    /// has addresses relative to the superblock, and is read through libhdf5 only.
    static func mappableFile(_ path: String) -> ReadOnlyFile? {
        guard let file = try? ReadOnlyFile(path: path),
              let head = try? file.read(at: 0, count: 8), head == [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A] else { return nil }
        return file
    }

    /// Refuses a dataset whose data this file does not hold: external storage (raw data in other
    /// files), a virtual dataset with a source outside this file's folder, or a declared extent its
    /// stored data cannot fill (unallocated chunks, a short contiguous block, which would read as
    /// fill values: a few bytes declaring terabytes).
    private func checkStorage(_ dataset: hid_t, dcpl: hid_t, name: String, shape: [Int], elementSize: Int) throws {
        let ctx = self.ctx
        if H5Pget_external_count(dcpl) > 0 {
            throw ImgConvError(.unsupported, path: path, "HDF5: dataset '/\(name)' keeps its data in external files (refused: only data stored in this file is read)")
        }
        let total = checkedByteCount(shape, elementSize: elementSize) ?? Int.max
        switch H5Pget_layout(dcpl) {
        case H5D_VIRTUAL:
            var count = 0
            try ctx.check(H5Pget_virtual_count(dcpl, &count), "read the sources of '/\(name)'")
            for k in 0..<count {
                let length = try ctx.check(H5Pget_virtual_filename(dcpl, k, nil, 0), "read source \(k) of '/\(name)'")
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                _ = try ctx.check(H5Pget_virtual_filename(dcpl, k, &buffer, buffer.count), "read source \(k) of '/\(name)'")
                let source = stringFromCBuffer(buffer)
                if source == "." { continue }
                // A missing source would read as fill values, and HDF5 would look for it in the
                // working folder next: it must be where the file says, beside or below it.
                let full = parentFolder(path) + "/" + source
                guard source.hasPrefix("/") || access(full, F_OK) == 0 else {
                    throw ImgConvError(.notFound, path: path, "HDF5: virtual dataset '/\(name)' reads from '\(source)', which is missing")
                }
                guard isInsideFolder(source, of: path) else {
                    throw ImgConvError(.unsupported, path: path,
                                       "HDF5: virtual dataset '/\(name)' reads from '\(source)', outside this file's folder (refused)")
                }
                try checkVirtualSource(dataset, dcpl: dcpl, index: k, file: full, source: source, name: name)
            }
        case H5D_CHUNKED:
            let rank = shape.count
            var chunk = [hsize_t](repeating: 0, count: max(rank, 1))
            guard rank > 0, H5Pget_chunk(dcpl, Int32(rank), &chunk) == Int32(rank) else { return }
            var expected = 1
            for (dim, side) in zip(shape, chunk) {
                let (product, overflow) = expected.multipliedReportingOverflow(by: (dim + Int(side) - 1) / max(1, Int(side)))
                expected = overflow ? Int.max : product
            }
            var stored: hsize_t = 0
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            let space = scope.own(try ctx.check(H5Dget_space(dataset), "read the shape of '/\(name)'"), .dataspace)
            try ctx.check(H5Dget_num_chunks(dataset, space, &stored), "count the chunks of '/\(name)'")
            guard Int(stored) >= expected else {
                throw ImgConvError(.corruptInput, path: path,
                                   "HDF5: dataset '/\(name)' of shape \(shape) stores \(stored) of its \(expected) chunks (refused: the rest would read as fill values)")
            }
        case H5D_CONTIGUOUS:
            let stored = H5Dget_storage_size(dataset)
            guard Int(stored) >= total else {
                throw ImgConvError(.corruptInput, path: path,
                                   "HDF5: dataset '/\(name)' of shape \(shape) needs \(total) bytes but stores \(stored) (refused)")
            }
        default:
            return   // compact: the data is in the object header itself
        }
    }

    /// Source `index` of the virtual dataset `name` holds a dataset of the mapping's extent and of
    /// the virtual dataset's type (HDF5 would convert another type silently).
    private func checkVirtualSource(_ dataset: hid_t, dcpl: hid_t, index: Int, file: String, source: String, name: String) throws {
        let ctx = self.ctx
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        let length = try ctx.check(H5Pget_virtual_dsetname(dcpl, index, nil, 0), "read source \(index) of '/\(name)'")
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        _ = try ctx.check(H5Pget_virtual_dsetname(dcpl, index, &buffer, buffer.count), "read source \(index) of '/\(name)'")
        let sourceName = stringFromCBuffer(buffer)
        // The block of the virtual dataset the source fills (the source's own space is stored as
        // "all of it", without an extent to compare).
        let mapped = scope.own(try ctx.check(H5Pget_virtual_vspace(dcpl, index), "read source \(index) of '/\(name)'"), .dataspace)
        let rank = Int(try ctx.check(H5Sget_simple_extent_ndims(mapped), "read source \(index) of '/\(name)'"))
        var first = [hsize_t](repeating: 0, count: rank), last = [hsize_t](repeating: 0, count: rank)
        try ctx.check(H5Sget_select_bounds(mapped, &first, &last), "read the rows of source \(index) of '/\(name)'")
        let want = zip(first, last).map { $1 - $0 + 1 }
        let sourceFile = scope.own(try ctx.check(H5Fopen(file, imc_h5f_acc_rdonly(), imc_h5p_default()),
                                                 "open '\(source)', a source of '/\(name)'"), .file)
        let data = scope.own(try ctx.check(H5Dopen2(sourceFile, sourceName, imc_h5p_default()),
                                           "open '/\(sourceName)' in '\(source)', a source of '/\(name)'"), .dataset)
        let space = scope.own(try ctx.check(H5Dget_space(data), "read the shape of '\(source)'"), .dataspace)
        var dims = [hsize_t](repeating: 0, count: rank)
        let found = try ctx.check(H5Sget_simple_extent_ndims(space), "read the shape of '\(source)'")
        if Int(found) == rank { try ctx.check(H5Sget_simple_extent_dims(space, &dims, nil), "read the shape of '\(source)'") }
        let type = scope.own(try ctx.check(H5Dget_type(data), "read the type of '\(source)'"), .datatype)
        let own = scope.own(try ctx.check(H5Dget_type(dataset), "read the type of '/\(name)'"), .datatype)
        guard Int(found) == rank, dims == want, try ctx.check(H5Tequal(type, own), "compare the types of '\(source)'") > 0 else {
            throw ImgConvError(.corruptInput, path: path,
                               "HDF5: virtual dataset '/\(name)' maps \(want.map { Int($0) }) from '\(source)', which holds another shape or type")
        }
    }

    public func classNames() throws -> [String]? {
        try HDF5.run(reading: path) {
            if hasClassNamesAttribute { return try readStrings(attribute: HDF5Writer.classNamesAttribute) }
            if datasetNames.contains("classNames") { return try readStrings(dataset: "classNames") }
            return nil
        }
    }

    public func embeddedManifest() throws -> [UInt8]? {
        try HDF5.run(reading: path) {
            guard try ctx.check(H5Aexists(file, HDF5Writer.manifestAttribute), "look for the manifest") > 0 else { return nil }
            let strings = try readStrings(attribute: HDF5Writer.manifestAttribute)
            guard strings.count == 1 else {
                throw ctx.fail("HDF5: attribute '\(HDF5Writer.manifestAttribute)' holds \(strings.count) strings, expected 1")
            }
            return Array(strings[0].utf8)
        }
    }

    public func compression(of name: String) throws -> String {
        guard datasetNames.contains(name) else { return "none (attribute)" }
        return try HDF5.run(reading: path) {
            let ctx = self.ctx
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            let dataset = scope.own(try ctx.check(H5Dopen2(file, name, imc_h5p_default()), "open the dataset '/\(name)'"), .dataset)
            let dcpl = scope.own(try ctx.check(H5Dget_create_plist(dataset), "read the layout of '/\(name)'"), .propertyList)
            guard H5Pget_layout(dcpl) == H5D_CHUNKED else { return "none (contiguous)" }
            var filters: [String] = []
            let count = try ctx.check(H5Pget_nfilters(dcpl), "read the filters of '/\(name)'")
            for i in 0..<UInt32(count) {
                var flags: UInt32 = 0
                var values = [UInt32](repeating: 0, count: 8)
                var valueCount = values.count
                var filterName = [CChar](repeating: 0, count: 64)
                var config: UInt32 = 0
                let id = try ctx.check(H5Pget_filter2(dcpl, i, &flags, &valueCount, &values, filterName.count, &filterName, &config),
                                       "read filter \(i) of '/\(name)'")
                switch id {
                case H5Z_FILTER_DEFLATE: filters.append("gzip(\(valueCount > 0 ? values[0] : 0))")
                case H5Z_FILTER_SHUFFLE: filters.append("shuffle")
                case H5Z_FILTER_FLETCHER32: filters.append("fletcher32")
                default: filters.append(stringFromCBuffer(filterName).isEmpty ? "filter \(id)" : stringFromCBuffer(filterName))
                }
            }
            let rank = Int(H5Pget_chunk(dcpl, 0, nil))
            var chunk = [hsize_t](repeating: 0, count: max(rank, 1))
            _ = H5Pget_chunk(dcpl, Int32(rank), &chunk)
            let chunkText = "chunks (" + chunk.prefix(rank).map { String($0) }.joined(separator: ", ") + ")"
            return (filters.isEmpty ? "none" : filters.joined(separator: "+")) + ", " + chunkText
        }
    }

    /// Strings of a string attribute of the root group, variable-length or fixed-length.
    private func readStrings(attribute: String) throws -> [String] {
        let ctx = self.ctx
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        let attr = scope.own(try ctx.check(H5Aopen(file, attribute, imc_h5p_default()), "open the attribute '\(attribute)'"), .attribute)
        let type = scope.own(try ctx.check(H5Aget_type(attr), "read the type of '\(attribute)'"), .datatype)
        let space = scope.own(try ctx.check(H5Aget_space(attr), "read the shape of '\(attribute)'"), .dataspace)
        return try readStrings(type: type, space: space, stored: H5Aget_storage_size(attr), what: "attribute '\(attribute)'",
                               scope: scope) { memType, buffer in
            H5Aread(attr, memType, buffer)
        }
    }

    /// Strings of a string dataset of the root group.
    private func readStrings(dataset name: String) throws -> [String] {
        let ctx = self.ctx
        let scope = HDF5Handles()
        defer { scope.closeAll() }
        let dataset = scope.own(try ctx.check(H5Dopen2(file, name, imc_h5p_default()), "open the dataset '/\(name)'"), .dataset)
        let type = scope.own(try ctx.check(H5Dget_type(dataset), "read the type of '/\(name)'"), .datatype)
        let space = scope.own(try ctx.check(H5Dget_space(dataset), "read the shape of '/\(name)'"), .dataspace)
        return try readStrings(type: type, space: space, stored: H5Dget_storage_size(dataset), what: "dataset '/\(name)'",
                               scope: scope) { memType, buffer in
            H5Dread(dataset, memType, imc_h5s_all(), imc_h5s_all(), imc_h5p_default(), buffer)
        }
    }

    /// The strings of an attribute or dataset whose data takes `stored` bytes in the file: the
    /// count its shape declares must fit in them (12 bytes at least for a variable-length
    /// string's heap reference) before anything is allocated or read, or libhdf5 would chase
    /// billions of heap references a few bytes of header declared.
    private func readStrings(type: hid_t, space: hid_t, stored: hsize_t, what: String, scope: HDF5Handles,
                             read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> [String] {
        let ctx = self.ctx
        guard H5Tget_class(type) == H5T_STRING else { throw ctx.fail("HDF5: \(what) does not hold strings") }
        let count = Int(try ctx.check(H5Sget_simple_extent_npoints(space), "count the strings of \(what)"))
        let variable = try ctx.check(H5Tis_variable_str(type), "read the string type of \(what)") > 0
        let storedEach = variable ? 12 : max(1, H5Tget_size(type))
        guard count.multipliedReportingOverflow(by: storedEach).overflow == false, UInt64(count * storedEach) <= stored else {
            throw ctx.fail("HDF5: \(what) declares \(count) strings, more than its \(stored) stored bytes can hold")
        }
        if variable {
            let memType = try HDF5Types.makeVariableString(ctx, scope)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            if count > 0 {
                _ = try pointers.withUnsafeMutableBytes { buf in
                    try ctx.check(read(memType, buf.baseAddress!), "read \(what)")
                }
            }
            let strings = pointers.map { $0.map { String(cString: $0) } ?? "" }
            // The library allocated each string: give them back.
            if count > 0 {
                _ = pointers.withUnsafeMutableBytes { buf in H5Dvlen_reclaim(memType, space, imc_h5p_default(), buf.baseAddress!) }
            }
            return strings
        }
        let size = H5Tget_size(type)
        guard size > 0 else { throw ctx.fail("HDF5: \(what) has strings of size 0") }
        let memType = scope.own(try ctx.check(H5Tcopy(type), "copy the string type of \(what)"), .datatype)
        var bytes = [UInt8](repeating: 0, count: count * size)
        if count > 0 {
            _ = try bytes.withUnsafeMutableBytes { buf in
                try ctx.check(read(memType, buf.baseAddress!), "read \(what)")
            }
        }
        return (0..<count).map { i in
            var item = bytes[(i * size)..<((i + 1) * size)]
            while let last = item.last, last == 0 || last == 0x20 { item = item.dropLast() }
            return String(decoding: item, as: UTF8.self)
        }
    }
}

/// A dataset's data, read along its first axis a few chunks at a time. A row (one item along the
/// first axis) larger than a read is read in slabs along the next axes, so no buffer is larger
/// than about 8 MiB whatever the shape says (a merge copies 8 MiB blocks of images).
final class HDF5DatasetStream: ByteStream {
    private let handles: HDF5Handles
    private let dataset: hid_t
    private let name: String
    private let dtype: DType
    private let shape: [Int]
    private let ctx: HDF5Context
    /// Reads select whole units along `axis`: one unit is an index of every axis before it and all
    /// of the axes after it (`unitBytes`).
    private let axis: Int
    private let unitBytes: Int
    private let unitsPerRead: Int
    /// The next unit: its index along `axis` and the indices of the axes before it.
    private var position: [Int]
    private var done = false
    /// The buffer slabs are read into; the slab read last (`staging`, or a mapping of the file)
    /// in `slab`, and the next byte of it to hand out.
    private var staging = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var slab = UnsafeRawBufferPointer(start: nil, count: 0)
    private var start = 0
    /// The file mapped, for raw chunks stored one after another (lent in place, not copied),
    /// unless the mapping could not lend a slab.
    private let mapped: MappedWindow?
    private var mappingRefused = false

    /// Bytes per read (about; at least one element).
    static let readBytes = 8 << 20

    /// Chunks of `chunkRows` whole items, unfiltered, in the read type: a slab is read chunk by
    /// chunk as stored (H5Dread_chunk), without libhdf5's selection and chunk cache.
    private let rawChunkRows: Int?

    init(handles: HDF5Handles, dataset: hid_t, name: String, dtype: DType, shape: [Int], chunkRows: Int, rawChunks: Bool = false,
         mapped: MappedWindow? = nil, ctx: HDF5Context) {
        self.handles = handles
        self.mapped = mapped
        self.dataset = dataset
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.ctx = ctx
        // The first axis whose units fit a read (the last axis always does: one element per unit at most).
        var axis = 0
        while axis + 1 < shape.count && shape[(axis + 1)...].reduce(dtype.byteSize, *) > Self.readBytes { axis += 1 }
        self.axis = axis
        unitBytes = shape.isEmpty ? dtype.byteSize : shape[(axis + 1)...].reduce(dtype.byteSize, *)
        let wanted = max(1, Self.readBytes / max(1, unitBytes))
        // Along the first axis, whole chunks, so each chunk is read (and inflated) once.
        unitsPerRead = axis == 0 && wanted >= chunkRows ? wanted / chunkRows * chunkRows : wanted
        position = [Int](repeating: 0, count: shape.isEmpty ? 0 : axis + 1)
        done = shape.contains(0)
        rawChunkRows = rawChunks && axis == 0 && !shape.isEmpty && unitsPerRead % chunkRows == 0 ? chunkRows : nil
    }

    deinit {
        let handles = self.handles
        _ = try? HDF5.run { handles.closeAll() }
        staging.deallocate()
    }

    /// Lends the next `count` bytes from the slab read last when it holds them all (a stored
    /// image, as the slabs hold whole images along the first axis).
    func borrow(_ count: Int) throws -> UnsafeRawBufferPointer? {
        if start >= slab.count {
            guard !done else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            try fill()
        }
        guard slab.count - start >= count else { return nil }
        defer { start += count }
        return UnsafeRawBufferPointer(rebasing: slab[start..<(start + count)])
    }

    /// Lends what is left of the slab read last, up to `count` bytes of whole units: a slab
    /// lent from the file's mapping ends where the file's chunks stop lying one after another.
    func borrow(upTo count: Int, unit: Int) throws -> UnsafeRawBufferPointer? {
        if start >= slab.count {
            guard !done else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            try fill()
        }
        let take = min(count, (slab.count - start) / max(1, unit) * unit)
        guard take > 0 else { return nil }
        defer { start += take }
        return UnsafeRawBufferPointer(rebasing: slab[start..<(start + take)])
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if start >= slab.count {
            guard !done else { return 0 }
            try fill()
        }
        let take = min(buffer.count, slab.count - start)
        buffer.baseAddress!.copyMemory(from: slab.baseAddress! + start, byteCount: take)
        start += take
        return take
    }

    /// Walks the chunks from item `first` on that `bytes` bytes hold, `rows` items each, while
    /// `take` accepts them: `take` gets a chunk's coordinates, the bytes walked before it and the
    /// bytes of a chunk, and checks that libhdf5 stores it without filters at that size (and
    /// what else its caller needs). The bytes of the chunks taken; the HDF5 error of the chunk
    /// refused, if any, is cleared. On the HDF5 thread.
    private func takeRawChunks(from first: Int, rows: Int, bytes: Int,
                               _ take: (_ offset: inout [hsize_t], _ at: Int, _ chunkBytes: Int) -> Bool) -> Int {
        let chunkBytes = rows * unitBytes
        var offset = [hsize_t](repeating: 0, count: shape.count)
        var at = 0
        while at < bytes {
            offset[0] = hsize_t(first + at / unitBytes)
            guard take(&offset, at, chunkBytes) else {
                _ = HDF5.takeErrorStack()
                break
            }
            at += chunkBytes
        }
        return at
    }

    /// The chunks from item `first` on, within `bytes` bytes, that lie one after another in the
    /// file, each allocated at the size of whole items and stored without filters (as imgconv's
    /// writer stores them, but for the chunk index's blocks between every few dozen): the file
    /// offset of the first and the bytes of the run (at most `bytes`); nil when the first chunk
    /// is not such a chunk. On the HDF5 thread.
    private func contiguousChunks(from first: Int, rows: Int, bytes: Int) -> (offset: Int, bytes: Int)? {
        guard let info = H5Dget_chunk_info_by_coord else { return nil }
        var base: Int?
        let taken = takeRawChunks(from: first, rows: rows, bytes: bytes) { offset, at, chunkBytes in
            var filters: UInt32 = 0
            var address: haddr_t = 0
            var size: hsize_t = 0
            guard info(dataset, &offset, &filters, &address, &size) >= 0, filters == 0,
                  size == hsize_t(chunkBytes), address < haddr_t(Int.max - chunkBytes) else { return false }
            if let base { return Int(address) == base + at }
            base = Int(address)
            return true
        }
        return base.map { ($0, min(taken, bytes)) }
    }

    /// Reads the chunks from item `first` on into `buffer` (whole chunks) as stored, one
    /// H5Dread_chunk each, after checking that each is allocated at the size of whole items and
    /// stored without filters; false (and the slab is read through H5Dread) at the first chunk
    /// that is not. On the HDF5 thread.
    private func readRawChunks(from first: Int, rows: Int, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        takeRawChunks(from: first, rows: rows, bytes: buffer.count) { offset, at, chunkBytes in
            var stored: hsize_t = 0
            var filters: UInt32 = 0
            return H5Dget_chunk_storage_size(dataset, &offset, &stored) >= 0 && stored == hsize_t(chunkBytes)
                && H5Dread_chunk(dataset, imc_h5p_default(), &offset, &filters, buffer.baseAddress! + at) >= 0 && filters == 0
        } >= buffer.count
    }

    /// Reads the next slab into `staging` and moves `position` past it.
    private func fill() throws {
        let (ctx, dataset, shape, name, dtype, axis) = (self.ctx, self.dataset, self.shape, self.name, self.dtype, self.axis)
        let count = shape.isEmpty ? 1 : min(unitsPerRead, shape[axis] - position[axis])
        // One buffer for every slab (the first slab is the largest; whole chunks for raw reads,
        // the last one's rows past the end included).
        let capacity = (rawChunkRows.map { (count + $0 - 1) / $0 * $0 } ?? count) * unitBytes
        if staging.count < capacity {
            staging.deallocate()
            staging = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
        }
        slab = UnsafeRawBufferPointer(start: nil, count: 0)
        start = 0
        let at = position
        let buf = UnsafeMutableRawBufferPointer(rebasing: staging[0..<(count * unitBytes)])
        let raw = rawChunkRows.map { _ in UnsafeMutableRawBufferPointer(rebasing: staging[0..<capacity]) }
        var inFile: (offset: Int, bytes: Int)?
        try HDF5.run(reading: ctx.path) {
            if let rows = rawChunkRows, mapped != nil, !mappingRefused,
               let run = contiguousChunks(from: at[0], rows: rows, bytes: buf.count) {
                inFile = run
                return
            }
            if let rows = rawChunkRows, let raw, readRawChunks(from: at[0], rows: rows, into: raw) { return }
            let memType = HDF5Types.type(for: dtype)
            if shape.isEmpty {
                try ctx.check(H5Dread(dataset, memType, imc_h5s_all(), imc_h5s_all(), imc_h5p_default(), buf.baseAddress!),
                              "read '/\(name)'")
                return
            }
            let scope = HDF5Handles()
            defer { scope.closeAll() }
            let fileSpace = scope.own(try ctx.check(H5Dget_space(dataset), "get the dataspace of '/\(name)'"), .dataspace)
            var offset = at.map { hsize_t($0) } + shape[(axis + 1)...].map { _ in hsize_t(0) }
            var block = at.dropLast().map { _ in hsize_t(1) } + [hsize_t(count)] + shape[(axis + 1)...].map { hsize_t($0) }
            try ctx.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &offset, nil, &block, nil), "select data of '/\(name)'")
            let memSpace = scope.own(try ctx.check(H5Screate_simple(Int32(block.count), &block, nil), "create a memory dataspace"), .dataspace)
            try ctx.check(H5Dread(dataset, memType, memSpace, fileSpace, imc_h5p_default(), buf.baseAddress!),
                          "read \(at) + \(count) of '/\(name)'")
        }
        var taken = count
        if let inFile {
            // The mapping lends the run of chunks in place (the slab ends with it). Where it
            // cannot (the file shrank, or the chunks lie past its end), this slab and the rest
            // are read through libhdf5.
            guard let lent = mapped?.bytes(at: inFile.offset, count: inFile.bytes) else {
                mappingRefused = true
                return try fill()
            }
            slab = lent
            taken = inFile.bytes / unitBytes
        } else {
            slab = UnsafeRawBufferPointer(buf)
        }
        guard !shape.isEmpty else {
            done = true
            return
        }
        // Advance like an odometer over the axes up to `axis`.
        position[axis] += taken
        var k = axis
        while k > 0 && position[k] == shape[k] {
            position[k] = 0
            position[k - 1] += 1
            k -= 1
        }
        if position[0] == shape[0] { done = true }
    }
}

/// Bytes held in memory, as a stream.
final class BytesStream: ByteStream {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let take = min(buffer.count, bytes.count - offset)
        guard take > 0 else { return 0 }
        bytes.withUnsafeBytes { src in buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: take) }
        offset += take
        return take
    }
}


/// Whether `name`, taken relative to the folder of `file`, names an existing file inside that
/// folder (or below it), links resolved.
func isInsideFolder(_ name: String, of file: String) -> Bool {
    guard !name.hasPrefix("/"), let folder = realpath(parentFolder(file), nil) else { return false }
    defer { free(folder) }
    guard let target = realpath(parentFolder(file) + "/" + name, nil) else { return false }
    defer { free(target) }
    let base = String(cString: folder)
    let resolved = String(cString: target)
    return resolved.hasPrefix(base == "/" ? "/" : base + "/")
}
