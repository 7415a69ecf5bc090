import XCTest
@testable import ImgConv

final class ExportNamingTests: XCTestCase {
    func testClassNamesBecomeSingleHarmlessFolderNames() {
        XCTAssertEqual(Exporter.folderName(for: "../../x"), "______x")
        XCTAssertEqual(Exporter.folderName(for: "a/b"), "a_b")
        XCTAssertEqual(Exporter.folderName(for: ".."), "__")
        XCTAssertEqual(Exporter.folderName(for: ".hidden"), "_hidden")
        XCTAssertEqual(Exporter.folderName(for: ""), "_")
        XCTAssertEqual(Exporter.folderName(for: "nul\u{0}tab\t"), "nul_tab_")
        XCTAssertEqual(Exporter.folderName(for: "café"), "café")
        XCTAssertEqual(Exporter.folderName(for: String(repeating: "é", count: 200)).utf8.count, 254)
        XCTAssertEqual(Exporter.folderNames(for: ["a/b", "a_b", "a"]), ["a_b", "a_b~1", "a"])
    }
}
