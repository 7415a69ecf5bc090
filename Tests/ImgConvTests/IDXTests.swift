import XCTest
@testable import ImgConvCore
@testable import ImgConvFormats

final class IDXTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "imgconv-idx-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func write(_ writer: IDXWriter, layout: TensorLayout, planned: Int, images: [[UInt8]], labels: [Int64],
                       classes: [String]) throws -> [Manifest.TensorRecord] {
        try writer.begin(images: layout, count: planned)
        for image in images { try image.withUnsafeBytes { try writer.append(image: $0) } }
        let records = try writer.finish(labels: labels, classNames: classes)
        try writer.commit()
        return records
    }

    func testHeaderBytesAreBigEndianMNISTStyle() {
        let header = IDXHeader(type: .uint8, dims: [10000, 28, 28])
        XCTAssertEqual(header.encoded(), [0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28])
        XCTAssertEqual(header.dataLength, 7_840_000)
    }

    func testRoundTripPlainAndGzipWithSkippedImages() throws {
        for gzip in [false, true] {
            let dir = folder + "/out-\(gzip)"
            let writer = IDXWriter(directory: dir, gzip: gzip)
            let images: [[UInt8]] = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [250, 251, 252, 253, 254, 255]]
            // Five planned, three arrive: N in the header must be rewritten (gzip: re-encoded).
            let records = try write(writer, layout: TensorLayout(dtype: .uint8, itemShape: [2, 3, 1], channelAxis: 2),
                                    planned: 5, images: images, labels: [0, 1, 1], classes: ["a", "b"])
            XCTAssertEqual(records.map(\.shape), [[3, 2, 3], [3]])
            let suffix = gzip ? ".gz" : ""
            let imagesPath = dir + "/train-images-idx3-ubyte" + suffix
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/train-labels-idx1-ubyte" + suffix))
            let reader = try IDXReader(images: imagesPath)
            XCTAssertEqual(reader.imagesHeader.dims, [3, 2, 3])
            let (header, stream) = try reader.open("trainXs")
            XCTAssertEqual(header.descr, "|u1")
            XCTAssertEqual(try stream.read(count: 100), images.flatMap { $0 })
            let (labelsHeader, labels) = try reader.open("trainYs")
            XCTAssertEqual(labelsHeader.shape, [3])
            XCTAssertEqual(try labels.read(count: 10), [0, 1, 1])
            if !gzip {
                XCTAssertEqual(Array(try readFile(imagesPath).prefix(8)), [0, 0, 8, 3, 0, 0, 0, 3])
            }
        }
    }

    func testUInt16NeedsAWiderTypeAndWidensExactly() throws {
        let layout = TensorLayout(dtype: .uint16, itemShape: [1, 2, 1], channelAxis: 2)
        XCTAssertThrowsError(try IDXWriter(directory: folder + "/refused").begin(images: layout, count: 1)) { error in
            XCTAssertTrue("\(error)".contains("--dtype float32"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/refused"))
        let pixels: [UInt16] = [1, 65535]
        let bytes = pixels.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        for (target, word) in [(DType.int32, "int"), (DType.float32, "float")] {
            let writer = IDXWriter(directory: folder + "/\(word)")
            writer.uint16Target = target
            let records = try write(writer, layout: layout, planned: 1, images: [bytes], labels: [0], classes: ["x"])
            XCTAssertEqual(records[0].dtype, target.rawValue)
            let path = folder + "/\(word)/train-images-idx3-\(word)"
            let raw = try readFile(path)
            XCTAssertEqual(raw[2], target == .int32 ? 0x0C : 0x0D)
            // Big-endian in the file, little-endian through the reader.
            let (_, stream) = try IDXReader(images: path).open("trainXs")
            let values = try stream.read(count: 8).withUnsafeBytes { buf in
                (0..<2).map { buf.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self) }
            }
            XCTAssertEqual(values, target == .int32 ? [1, 65535] : [Float(1).bitPattern, Float(65535).bitPattern])
        }
    }

    func testLabelTypeFollowsTheClassCount() throws {
        XCTAssertEqual(IDXWriter.labelType(classCount: 256), .uint8)
        XCTAssertEqual(IDXWriter.labelType(classCount: 257), .int16)
        XCTAssertEqual(IDXWriter.labelType(classCount: 40000), .int32)
        let writer = IDXWriter(directory: folder + "/many", prefix: "t")
        let classes = (0..<300).map { "c\($0)" }
        let records = try write(writer, layout: TensorLayout(dtype: .uint8, itemShape: [1, 1, 1], channelAxis: 2),
                                planned: 2, images: [[1], [2]], labels: [0, 299], classes: classes)
        XCTAssertEqual(records[1].dtype, "int16")
        let labels = try readFile(folder + "/many/t-labels-idx1-short")
        XCTAssertEqual(labels, [0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 0, 0x01, 0x2B])
        // The reader pairs it by name.
        let reader = try IDXReader(images: folder + "/many/t-images-idx3-ubyte")
        XCTAssertEqual(reader.labelsPath, folder + "/many/t-labels-idx1-short")
    }

    func testColourImagesAreIDX4WithAWarning() throws {
        let writer = IDXWriter(directory: folder + "/rgb")
        var warnings: [String] = []
        writer.warn = { warnings.append($0) }
        _ = try write(writer, layout: TensorLayout(dtype: .uint8, itemShape: [1, 2, 3], channelAxis: 2),
                      planned: 1, images: [[1, 2, 3, 4, 5, 6]], labels: [0], classes: ["a"])
        XCTAssertEqual(Array(try readFile(folder + "/rgb/train-images-idx4-ubyte").prefix(4)), [0, 0, 8, 4])
        XCTAssertTrue(warnings.first?.contains("torchvision") ?? false, "\(warnings)")
    }

    func testMalformedHeadersNameTheFieldAndValue() throws {
        let good = IDXHeader(type: .uint8, dims: [2, 2]).encoded() + [1, 2, 3, 4]
        let cases: [(String, [UInt8], String)] = [
            ("magic", [1] + good.dropFirst(), "magic bytes 0-1 are 0x01 0x00"),
            ("type", [0, 0, 0x0A] + good.dropFirst(3), "type byte is 0x0a"),
            ("ndims", [0, 0, 8, 0], "number of dimensions (byte 3) is 0"),
            ("short", Array(good.dropLast()), "IDX data is 3 bytes, dimensions 2x2 of uint8 need 4"),
            ("long", good + [9], "IDX data is 5 bytes"),
            ("dims", [0, 0, 8, 3, 0, 0], "3 dimensions need 16 header bytes, the file has 6"),
        ]
        for (name, bytes, expected) in cases {
            let path = folder + "/\(name)-images-idx2-ubyte"
            try writeFileAtomically(path, bytes)
            XCTAssertThrowsError(try IDXReader(images: path), name) { error in
                let e = error as! ImgConvError
                XCTAssertEqual(e.code, .corruptInput, name)
                XCTAssertEqual(e.path, path, name)
                XCTAssertTrue(e.message.contains(expected), "\(name): \(e.message)")
            }
        }
    }

    func testLabelsMustPairWithImages() throws {
        try writeFileAtomically(folder + "/x-images-idx1-ubyte", IDXHeader(type: .uint8, dims: [3]).encoded() + [1, 2, 3])
        try writeFileAtomically(folder + "/x-labels-idx1-ubyte", IDXHeader(type: .uint8, dims: [2]).encoded() + [0, 1])
        XCTAssertThrowsError(try IDXReader(images: folder + "/x-images-idx1-ubyte")) { error in
            XCTAssertTrue("\(error)".contains("2 labels for the 3 images"), "\(error)")
        }
    }

    func testTruncatedGzipIsAnErrorNamingTheFile() throws {
        let dir = folder + "/gz"
        let writer = IDXWriter(directory: dir, gzip: true)
        let image = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }
        _ = try write(writer, layout: TensorLayout(dtype: .uint8, itemShape: [64, 64, 1], channelAxis: 2),
                      planned: 1, images: [image], labels: [0], classes: ["a"])
        let path = dir + "/train-images-idx3-ubyte.gz"
        let bytes = try readFile(path)
        try writeFileAtomically(path, Array(bytes.prefix(bytes.count / 2)))
        let (_, stream) = try IDXReader(images: path).open("trainXs")
        XCTAssertThrowsError(try stream.read(count: 5000)) { error in
            XCTAssertEqual((error as? ImgConvError)?.path, path)
        }
    }
}
