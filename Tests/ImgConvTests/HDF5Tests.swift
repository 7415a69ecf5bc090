import XCTest
@testable import ImgConvCore
@testable import ImgConvFormats

final class HDF5Tests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "imgconv-h5-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func writeSample(_ path: String, compress: Bool, planned: Int = 4) throws -> [[UInt8]] {
        let writer = HDF5Writer(path: path, compress: compress)
        let images = (0..<3).map { i in (0..<12).map { UInt8(truncatingIfNeeded: $0 * 17 + i) } }
        try writer.begin(plan: ImagePlan(width: 2, height: 2, channels: 3, depth: .eight), count: planned)
        for image in images { try image.withUnsafeBytes { try writer.append(image: $0) } }
        let records = try writer.finish(labels: [1, 0, 1], classNames: ["cat", "dög"])
        XCTAssertEqual(records.map(\.name), ["trainXs", "trainYs", "classNames"])
        XCTAssertEqual(records[0].shape, [3, 2, 2, 3])
        var manifest = Array("{\"x\": 1}".utf8)
        try writer.embedManifest(&manifest)
        try writer.commit()
        return images
    }

    func testRoundTripThroughTheReader() throws {
        for compress in [false, true] {
            let path = folder + "/rt-\(compress).h5"
            let images = try writeSample(path, compress: compress)
            let reader = try HDF5Reader(path: path)
            XCTAssertEqual(reader.tensorNames, ["trainXs", "trainYs", "classNames"])
            let (header, stream) = try reader.open("trainXs")
            XCTAssertEqual(header.descr, "|u1")
            XCTAssertEqual(header.shape, [3, 2, 2, 3])
            XCTAssertEqual(try stream.read(count: 1000), images.flatMap { $0 })
            let (labelsHeader, labels) = try reader.open("trainYs")
            XCTAssertEqual(labelsHeader.descr, "<i8")
            XCTAssertEqual(try labels.read(count: 100).count, 24)
            XCTAssertEqual(try reader.classNames(), ["cat", "dög"])
            XCTAssertEqual(try reader.embeddedManifest(), Array("{\"x\": 1}".utf8))
            XCTAssertTrue(try reader.compression(of: "trainXs").hasPrefix(compress ? "shuffle+gzip(4)" : "none"))
        }
    }

    func testSameInputGivesTheSameBytes() throws {
        _ = try writeSample(folder + "/a.h5", compress: true)
        _ = try writeSample(folder + "/b.h5", compress: true)
        XCTAssertEqual(try readFile(folder + "/a.h5"), try readFile(folder + "/b.h5"))
    }

    func testChunkPolicy() {
        XCTAssertEqual(HDF5Writer.imagesPerChunk(bytesPerImage: 32 << 10, planned: 1000), 1)
        XCTAssertEqual(HDF5Writer.imagesPerChunk(bytesPerImage: 784, planned: 60000), 335)
        XCTAssertEqual(HDF5Writer.imagesPerChunk(bytesPerImage: 784, planned: 10), 10)
        XCTAssertEqual(HDF5Writer.imagesPerChunk(bytesPerImage: 784, planned: 0), 1)
    }

    func testMissingDatasetIsAOneLineErrorNamingIt() throws {
        let path = folder + "/m.h5"
        _ = try writeSample(path, compress: false)
        let reader = try HDF5Reader(path: path)
        XCTAssertThrowsError(try reader.open("testXs")) { error in
            let e = error as! ImgConvError
            XCTAssertEqual(e.code, .corruptInput)
            XCTAssertEqual(e.path, path)
            XCTAssertTrue(e.message.contains("dataset '/testXs' is missing"), e.message)
        }
    }

    func testLibraryErrorsCarryTheHDF5Stack() throws {
        let path = folder + "/not.h5"
        try writeFileAtomically(path, Array("\u{89}HDF\r\n\u{1A}\n but nothing else".utf8))
        XCTAssertThrowsError(try HDF5Reader(path: path)) { error in
            let e = error as! ImgConvError
            XCTAssertEqual(e.code, .corruptInput)
            XCTAssertTrue(e.message.hasPrefix("HDF5: open the file: H5Fopen(): "), e.message)
            XCTAssertFalse(e.message.contains("\n"))
        }
    }

    func testAbortLeavesNoFileAndKeepsAnEarlierOne() throws {
        let path = folder + "/keep.h5"
        try writeFileAtomically(path, [1, 2, 3])
        let writer = HDF5Writer(path: path)
        try writer.begin(plan: ImagePlan(width: 1, height: 1, channels: 1, depth: .eight), count: 1)
        try [UInt8(7)].withUnsafeBytes { try writer.append(image: $0) }
        writer.abort()
        XCTAssertEqual(try readFile(path), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["keep.h5"])
    }

    func testEveryCallRunsOnTheHDF5Thread() throws {
        XCTAssertFalse(HDF5.isCurrentThread)
        XCTAssertTrue(try HDF5.run { HDF5.isCurrentThread })
        // Nested use from the HDF5 thread runs inline instead of deadlocking.
        XCTAssertEqual(try HDF5.run { try HDF5.run { 42 } }, 42)
    }
}
