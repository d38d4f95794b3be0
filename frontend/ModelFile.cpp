// Reading layer-level model files: text with field positions, binary, and format detection.
#include "frontend/ModelFile.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <regex>
#include <vector>

#include "frontend/Names.h"

namespace kiln::frontend {
namespace pb = ::google::protobuf;

ModelSource::ModelSource(std::string file) : file_(std::move(file)) {}
ModelSource::ModelSource(std::string file, std::shared_ptr<const Tree> tree)
    : file_(std::move(file)), tree_(std::move(tree)) {}

SourceLoc ModelSource::at(std::span<const FieldStep> path) const {
  SourceLoc loc{file_};
  if (path.empty() && tree_) return {file_, 1, 1};  // The model as a whole: its file's start.
  const Tree* tree = tree_.get();
  const pb::Descriptor* desc = proto::Model::descriptor();
  for (const FieldStep& step : path) {
    if (!tree || !desc) break;
    const pb::FieldDescriptor* fd = desc->FindFieldByName(std::string(step.field));
    assert(fd && "ModelSource::at: no such field in the schema");
    if (!fd) break;
    // A repeated field needs an index and a singular one must have none; the tree answers
    // "not found" otherwise.
    int index = fd->is_repeated() ? std::max(step.index, 0) : -1;
    pb::TextFormat::ParseLocation p = tree->GetLocation(fd, index);
    if (p.line < 0) break;
    loc.line = p.line + 1;
    loc.column = p.column + 1;
    desc = fd->message_type();
    tree = desc ? tree->GetTreeForNested(fd, index) : nullptr;
  }
  return loc;
}

namespace {

class SilentErrors : public pb::io::ErrorCollector {
 public:
  void AddError(int, pb::io::ColumnNumber, const std::string&) override {}
};

// The top-level structure of a text file, read token by token (so it works on files that do
// not parse): the top-level field names, and the extent and name of each `layer { ... }`.
struct LayerSpan {
  int firstLine = 0, lastLine = 0;  // 0-based, inclusive
  std::string name;                 // Its `name: "..."`, if written.
};
struct TextOutline {
  std::vector<std::string> topFields;
  std::vector<LayerSpan> layers;
  std::vector<std::string_view> lines;  // The text's lines, for pointing at tokens.
};

TextOutline outline(std::string_view data) {
  TextOutline out;
  for (size_t start = 0; start <= data.size();) {
    size_t end = data.find('\n', start);
    if (end == std::string_view::npos) end = data.size();
    out.lines.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  pb::io::ArrayInputStream stream(data.data(), static_cast<int>(data.size()));
  SilentErrors quiet;
  pb::io::Tokenizer tok(&stream, &quiet);
  tok.set_comment_style(pb::io::Tokenizer::SH_COMMENT_STYLE);
  int depth = 0;
  bool inLayer = false;
  std::string pendingIdent;  // An identifier that may be a field name (if ':' or '{' follows).
  bool expectLayerName = false;
  bool layerColon = false;  // `layer:` at the top level; a '{' may follow (`layer: { ... }`).
  while (tok.Next()) {
    const pb::io::Tokenizer::Token& t = tok.current();
    if (t.type == pb::io::Tokenizer::TYPE_IDENTIFIER) {
      pendingIdent = t.text;
      layerColon = false;
      continue;
    }
    if (t.type == pb::io::Tokenizer::TYPE_SYMBOL) {
      bool opens = t.text == "{" || t.text == "<";
      if (opens && layerColon && depth == 0) {
        out.layers.push_back({t.line, t.line, ""});
        inLayer = true;
      }
      layerColon = depth == 0 && t.text == ":" && pendingIdent == "layer";
      if ((t.text == ":" || opens) && !pendingIdent.empty()) {
        if (depth == 0) {
          out.topFields.push_back(pendingIdent);
          if (pendingIdent == "layer" && opens) {
            out.layers.push_back({t.line, t.line, ""});
            inLayer = true;
          }
        } else if (depth == 1 && inLayer && pendingIdent == "name" && t.text == ":") {
          expectLayerName = true;
          pendingIdent.clear();
          continue;
        }
      }
      if (opens) ++depth;
      if (t.text == "}" || t.text == ">") {
        if (depth > 0) --depth;
        if (depth == 0 && inLayer) {
          out.layers.back().lastLine = t.line;
          inLayer = false;
        }
      }
    } else {
      layerColon = false;
    }
    if (t.type == pb::io::Tokenizer::TYPE_STRING && expectLayerName) {
      std::string name;
      pb::io::Tokenizer::ParseString(t.text, &name);
      out.layers.back().name = name;
    }
    expectLayerName = false;
    pendingIdent.clear();
  }
  if (inLayer) out.layers.back().lastLine = INT32_MAX;  // Unterminated: runs to the end.
  return out;
}

std::vector<std::string_view> fieldNames(const pb::Descriptor* d) {
  std::vector<std::string_view> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
  return names;
}

// Protobuf's own message for a misspelt field, rewritten to say what the fields are and which
// one was meant; inside a layer it also says which layer. `column` (0-based) moves back from the
// token after an unknown field name to the name itself.
std::string explainParseError(const std::string& message, int line, int* column,
                              const TextOutline& text) {
  std::string where;
  for (size_t i = 0; i < text.layers.size(); ++i)
    if (line >= text.layers[i].firstLine && line <= text.layers[i].lastLine)
      where = "layer " + std::to_string(i + 1) +
              (text.layers[i].name.empty() ? "" : " ('" + text.layers[i].name + "')") + ": ";
  static const std::regex noField(
      R"re(Message type "kiln\.proto\.(\w+)" has no field named "([^"]*)"\.?)re");
  static const std::regex twoKinds(
      R"re(Field "(\w+)" is specified along with field "(\w+)", another member of oneof "kind"\.?)re");
  std::smatch m;
  if (std::regex_match(message, m, twoKinds))
    return where + "a layer has one kind, but this one has both " + m[2].str() + " and " +
           m[1].str() + " (put each in its own layer { ... })";
  if (!std::regex_match(message, m, noField)) return where + message;
  const pb::Descriptor* d =
      pb::DescriptorPool::generated_pool()->FindMessageTypeByName("kiln.proto." + m[1].str());
  if (!d) return where + message;
  std::vector<std::string_view> names = fieldNames(d);
  const std::string field = m[2].str();
  if (line >= 0 && static_cast<size_t>(line) < text.lines.size()) {
    std::string_view l = text.lines[static_cast<size_t>(line)];
    size_t at = l.substr(0, static_cast<size_t>(std::max(*column, 0))).rfind(field);
    if (at != std::string_view::npos) *column = static_cast<int>(at);
  }
  if (d != proto::Model::descriptor() && proto::Model::descriptor()->FindFieldByName(field))
    return where + "'" + field + "' is a top-level field of the model, found inside " +
           std::string(d->name()) + "; is a '}' missing before it?";
  if (d == proto::Layer::descriptor()) {
    std::vector<std::string_view> kinds(names.begin() + 1, names.end());  // all but `name`
    return where + "unknown layer kind '" + field + "'" + didYouMean(field, names) +
           " (a layer has a name and one of " + oneOf(kinds) + ")";
  }
  return where + std::string(d->name()) + " has no field '" + field + "'" +
         didYouMean(field, names) + " (its fields: " + oneOf(names) + ")";
}

class CollectErrors : public pb::io::ErrorCollector {
 public:
  CollectErrors(std::string file, const TextOutline& text) : file_(std::move(file)), text_(text) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    int col = column;
    std::string text = explainParseError(message, line, &col, text_);
    diags.push_back(Diagnostic{{file_, line + 1, col + 1}, {}, {}, std::move(text)});
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  std::vector<Diagnostic> diags;

 private:
  std::string file_;
  const TextOutline& text_;
};

}  // namespace

bool isModelData(std::string_view data, GraphFormat format) {
  if (data.size() > static_cast<size_t>(INT32_MAX)) return false;
  if (format == GraphFormat::Binary) {
    pb::LogSilencer quiet;
    proto::Model m;
    if (!m.ParseFromArray(data.data(), static_cast<int>(data.size()))) return false;
    return m.layer_size() > 0 && m.GetReflection()->GetUnknownFields(m).empty();
  }
  for (const std::string& f : outline(data).topFields) {
    if (f == "layer" || f == "training") return true;
    if (f == "parameter" || f == "node" || f == "output") return false;
  }
  return false;
}

Expected<ParsedModel> parseModel(std::string_view data, GraphFormat format,
                                 const std::string& file) {
  if (data.size() > static_cast<size_t>(INT32_MAX))
    return Error(Diagnostic{{file}, {}, {}, "file too large"});
  ParsedModel out{proto::Model(), ModelSource(file)};
  if (format == GraphFormat::Binary) {
    pb::LogSilencer quiet;  // The error below is the one that counts.
    if (!out.model.ParseFromArray(data.data(), static_cast<int>(data.size())))
      return Error(Diagnostic{{file},
                              {},
                              {},
                              "not a valid binary Kiln model (protobuf parsing failed; text "
                              "models should have the .pbtxt extension)"});
    return out;
  }
  TextOutline text = outline(data);
  auto tree = std::make_shared<ModelSource::Tree>();
  pb::TextFormat::Parser parser;
  CollectErrors errors(file, text);
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(tree.get());
  if (!parser.ParseFromString(std::string(data), &out.model)) {
    if (errors.diags.empty())
      errors.diags.push_back(Diagnostic{{file}, {}, {}, "could not parse protobuf text"});
    return Error(std::move(errors.diags));
  }
  out.source = ModelSource(file, std::move(tree));
  return out;
}

Expected<ParsedModel> readModelFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string data, readFileBytes(path));
  return parseModel(data, formatForPath(path), path);
}

std::string modelToText(const proto::Model& m) {
  std::string out;
  pb::TextFormat::Printer printer;
  printer.PrintToString(m, &out);
  return out;
}

}  // namespace kiln::frontend
