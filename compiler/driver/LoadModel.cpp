// Loading a model file of either level: a layer-level model (frontend/) or an op-level graph.
#include "compiler/driver/Commands.h"
#include "frontend/ModelFile.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"

namespace kiln::driver {

Expected<LoadedModel> loadAnyModel(const std::string& path, frontend::Expansion mode) {
  KILN_ASSIGN_OR_RETURN(std::string data, readFileBytes(path));
  GraphFormat format = formatForPath(path);
  LoadedModel out;
  if (frontend::isModelData(data, format)) {
    KILN_ASSIGN_OR_RETURN(frontend::ParsedModel m, frontend::parseModel(data, format, path));
    KILN_ASSIGN_OR_RETURN(out.model, frontend::expandModel(m, mode));
    out.layerLevel = true;
    return out;
  }
  KILN_ASSIGN_OR_RETURN(out.model.graph, parseGraph(data, format, path));
  KILN_RETURN_IF_ERROR(verifyGraph(*out.model.graph));
  out.model.name = out.model.graph->name();
  return out;
}

Expected<std::unique_ptr<Graph>> loadModel(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(LoadedModel m, loadAnyModel(path));
  return std::move(m.model.graph);
}

}  // namespace kiln::driver
