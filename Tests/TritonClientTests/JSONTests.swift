import Testing
@testable import TritonClient

@Suite struct JSONTests {
    @Test func duplicateKeysAreKeptAndTheLastWins() throws {
        let value = try JSONValue.parse(#"{"parameters":{"sequence_id":1,"sequence_id":2},"b":"x"}"#)
        #expect(value["parameters"]?["sequence_id"] == .int(2))
        #expect(value["parameters"]?.objectValue?.count == 2)
        #expect(value["parameters"]?.dictionaryValue?["sequence_id"] == .int(2))
        #expect(value["b"]?.stringValue == "x")
    }

    @Test func integersStayExactBeyondDoublePrecision() throws {
        let value = try JSONValue.parse("[18446744073709551615, -9223372036854775808, 9007199254740993, 1.5, -0.0, 1e3]")
        #expect(value[0]?.uint64Value == UInt64.max)
        #expect(value[1]?.int64Value == Int64.min)
        #expect(value[2]?.int64Value == 9_007_199_254_740_993)
        #expect(value[3]?.doubleValue == 1.5)
        #expect(value[5]?.doubleValue == 1000)
    }

    @Test func escapesAndSurrogatePairsDecode() throws {
        let value = try JSONValue.parse(#""a\"b\\c\/\n\t\u00e9\ud83d\ude00""#)
        #expect(value.stringValue == "a\"b\\c/\n\té😀")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "\"abc", "tru", "01", "1.", "-", "[1] x", "\"\\x\"",
        "\"\\ud800\"", "{\"a\":\"\u{01}\"}", "nul",
    ])
    func malformedDocumentsAreErrors(_ text: String) {
        #expect(throws: TritonClientError.self) { try JSONValue.parse(text) }
        do {
            _ = try JSONValue.parse(text)
        } catch {
            #expect(error.code == .malformedResponse)
        }
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let bomb = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: TritonClientError.self) { try JSONValue.parse(bomb) }
    }

    @Test func writerEscapesAndRoundTrips() throws {
        let value: JSONValue = ["text": "quote\" backslash\\ newline\n ctl\u{01} é", "n": -3, "list": [true, nil, 2.5]]
        let text = value.description
        #expect(text == #"{"text":"quote\" backslash\\ newline\n ctl\u0001 é","n":-3,"list":[true,null,2.5]}"#)
        #expect(try JSONValue.parse(text) == value)
    }
}
