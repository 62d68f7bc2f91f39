import Testing
@testable import TritonClient

@Suite("JSON: value limits and single-member reads")
struct JSONLimitTests {
    @Test("a document of more values than allowed is refused; one within the limit parses")
    func maxValues() throws {
        let doc = Array(#"{"a":[1,2,3],"b":"x"}"#.utf8)  // object, array, 3 numbers, string: 6 values
        #expect(try JSONValue.parse(doc, maxValues: 6)["b"] == .string("x"))
        #expect(throws: TritonClientError.self) { try JSONValue.parse(doc, maxValues: 5) }
    }

    @Test("one member of an object: the others are checked but not kept")
    func member() throws {
        let doc = Array(#"{"pad":[0,0,{"k":"\u00e9"}],"image":"aGk=","more":{"x":[true,null,-1.5e3]}}"#.utf8)
        #expect(try JSONValue.member("image", ofObject: doc) == .string("aGk="))
        #expect(try JSONValue.member("absent", ofObject: doc) == nil)
        // Values outside the member do not count against the limit.
        #expect(try JSONValue.member("image", ofObject: doc, maxValues: 1) == .string("aGk="))
        for bad in [#"{"image":"a","image":"b"}"#, #"["image"]"#, #"{"image":"a","pad":[0,]}"#, #"{"image":"a"} x"#, #"{"pad":01}"#] {
            #expect(throws: TritonClientError.self, "\(bad)") { try JSONValue.member("image", ofObject: Array(bad.utf8)) }
        }
    }
}
