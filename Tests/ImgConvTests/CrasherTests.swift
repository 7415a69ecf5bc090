import XCTest
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What the readers now say about the inputs the fuzz targets crashed on (Tests/Fixtures/crashers/,
/// replayed whole by Tests/Interop/test_crashers.py and scripts/fuzz.sh --replay): a clear error.
final class CrasherTests: XCTestCase {
    static let crashers = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/crashers").path

    private func code(_ body: () throws -> Void) -> ImgConvError.Code? {
        do { try body() } catch let e as ImgConvError { return e.code } catch { return nil }
        return nil
    }

    func testZip64OffsetsNearTwoToThe64AreCorruptInput() {
        for name in ["zip64-extra-offset-overflow.npz", "zip64-locator-offset-overflow.zip"] {
            XCTAssertEqual(code { _ = try ZipReader(path: Self.crashers + "/zip/" + name) }, .corruptInput, name)
        }
    }

    func testAUnicodeWidthPastAnIntIsCorruptInput() throws {
        let reader = try NPYFileReader(path: Self.crashers + "/npy/unicode-width-overflow.npy")
        XCTAssertThrowsError(try reader.open(reader.name)) {
            XCTAssertEqual(($0 as? ImgConvError)?.code, .corruptInput)
            XCTAssertTrue(($0 as? ImgConvError)?.message.contains("has items too large to hold") ?? false, "\($0)")
        }
    }

    func testIntegerLabelsAreBounded() throws {
        XCTAssertEqual(try ListScanner.parseCSVForFuzzing(Array("a.png,\(ListScanner.maxIntegerLabel)\n".utf8)), 1)
        XCTAssertEqual(code { _ = try ListScanner.parseCSVForFuzzing(Array("a.png,3\nb.png,1048576\n".utf8)) },
                       .limitExceeded)
        // The crasher's label is followed by a NUL byte, itself refused now (the text used to end
        // there, silently dropping the rows after it); up to the NUL it is the huge label.
        let crasher = try readFile(Self.crashers + "/csv/huge-integer-label.csv")
        XCTAssertEqual(code { _ = try ListScanner.parseCSVForFuzzing(crasher) }, .corruptInput)
        XCTAssertEqual(code { _ = try ListScanner.parseCSVForFuzzing(Array(crasher.prefix { $0 != 0 })) }, .limitExceeded)
    }

    func testNULByteIsRefusedWithItsLine() {
        XCTAssertThrowsError(try ListScanner.parseCSVForFuzzing(Array("path,label\r\na.png,1\nb.png,2\0x\nc.png,3\n".utf8))) {
            XCTAssertEqual(($0 as? ImgConvError)?.code, .corruptInput)
            XCTAssertEqual(($0 as? ImgConvError)?.path, "fuzz.csv:3")
        }
    }

    func testTIFFRawSamplesCountAgainstTheLimits() throws {
        let data = try readFile(Self.crashers + "/tiff/many-samples-per-pixel.tif")
        XCTAssertEqual(code { _ = try Decoders().header(data, format: .tiff) }, .limitExceeded)
    }

    func testTIFFTilesFarLargerThanTheImageAreRefused() throws {
        let data = try readFile(Self.crashers + "/tiff/huge-tiles.tif")
        let decoders = Decoders()
        XCTAssertNotNil(code {
            let header = try decoders.header(data, format: .tiff)
            _ = try decoders.decode(data, format: .tiff, header: header)
        })
    }
}
