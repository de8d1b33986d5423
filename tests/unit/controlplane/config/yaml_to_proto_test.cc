// The conversions Config does not exercise (bools, signed and 64-bit integers, bytes), on
// protobuf's own descriptor messages.
#include "controlplane/config/yaml_to_proto.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <string>

namespace wsgate::controlplane {
namespace {

using ::testing::StartsWith;

TEST(ParseYamlIntoTest, Bools) {
  google::protobuf::FileOptions o;
  ASSERT_TRUE(ParseYamlInto("java_multiple_files: true\ndeprecated: False\n", &o).ok());
  EXPECT_TRUE(o.java_multiple_files());
  EXPECT_TRUE(o.has_deprecated());
  EXPECT_FALSE(o.deprecated());
  for (const char* bad : {"yes", "1", "on", "[true]"}) {
    absl::Status s = ParseYamlInto(std::string("deprecated: ") + bad + "\n", &o);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), StartsWith("deprecated: expected ")) << bad;
  }
}

TEST(ParseYamlIntoTest, StringsStayVerbatim) {
  google::protobuf::FileOptions o;
  ASSERT_TRUE(
      ParseYamlInto("java_package: 0x1F\ngo_package: 1.50\nobjc_class_prefix: true\n", &o).ok());
  EXPECT_EQ(o.java_package(), "0x1F");
  EXPECT_EQ(o.go_package(), "1.50");
  EXPECT_EQ(o.objc_class_prefix(), "true");
}

TEST(ParseYamlIntoTest, SignedAnd64BitIntegersDoublesBytes) {
  google::protobuf::UninterpretedOption u;
  absl::Status s = ParseYamlInto(R"(
positive_int_value: 18446744073709551615
negative_int_value: -9223372036854775808
double_value: -1.5e3
string_value: aGVsbG8=
identifier_value: 42
)",
                                 &u);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(u.positive_int_value(), 18446744073709551615ull);
  EXPECT_EQ(u.negative_int_value(), INT64_MIN);
  EXPECT_DOUBLE_EQ(u.double_value(), -1500);
  EXPECT_EQ(u.string_value(), "hello");  // bytes are base64, as in protobuf's JSON mapping
  EXPECT_EQ(u.identifier_value(), "42");

  EXPECT_THAT(
      std::string(ParseYamlInto("positive_int_value: 18446744073709551616\n", &u).message()),
      StartsWith("positive_int_value: expected an unsigned integer"));
  EXPECT_THAT(std::string(ParseYamlInto("negative_int_value: 1e3\n", &u).message()),
              StartsWith("negative_int_value: expected an integer, got '1e3'"));
}

TEST(ParseYamlIntoTest, Int32RangeAndEnumsOnNestedRepeated) {
  google::protobuf::DescriptorProto d;
  absl::Status s = ParseYamlInto(R"(
name: M
field:
  - {name: a, number: -5, label: LABEL_REPEATED, type: TYPE_STRING, jsonName: A}
)",
                                 &d);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(d.field_size(), 1);
  EXPECT_EQ(d.field(0).number(), -5);
  EXPECT_EQ(d.field(0).label(), google::protobuf::FieldDescriptorProto::LABEL_REPEATED);
  EXPECT_EQ(d.field(0).json_name(), "A");
  EXPECT_THAT(std::string(ParseYamlInto("field: [{number: 2147483648}]\n", &d).message()),
              StartsWith("field[0].number: 2147483648 is out of range for a 32-bit integer"));
}

TEST(ParseYamlIntoTest, FailureLeavesTheMessageCleared) {
  google::protobuf::FileOptions o;
  o.set_java_package("old");
  EXPECT_FALSE(ParseYamlInto("java_package: new\nnope: 1\n", &o).ok());
  EXPECT_FALSE(o.has_java_package());
}

}  // namespace
}  // namespace wsgate::controlplane
