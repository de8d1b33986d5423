#include "dataplane/kinds/room/room_http.h"

#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

namespace {

// The seed's embedded test page, rewritten: get a client id from POST /api/clients, join the
// first room route, send and show messages. Plain HTML and JavaScript, no build step.
constexpr char kChatPage[] = R"html(<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>wsgate chat</title></head>
<body>
<h1>wsgate chat</h1>
<p>Your ID: <span id="id">...</span></p>
<form id="form"><input id="text" autocomplete="off"><button>Send</button></form>
<ul id="messages"></ul>
<script>
const ROOM_PATH = "__ROOM_PATH__";
const CLIENT_PARAM = "__CLIENT_PARAM__";
function show(text) {
  const li = document.createElement("li");
  li.textContent = text;
  document.getElementById("messages").appendChild(li);
}
fetch("/api/clients", {method: "POST"}).then(r => r.json()).then(({client_id}) => {
  document.getElementById("id").textContent = client_id;
  const path = ROOM_PATH.replace("{" + CLIENT_PARAM + "}", encodeURIComponent(client_id))
                        .replace(/\{[^}]*\}/g, "lobby");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") +
                           location.host + path);
  ws.onmessage = e => show(e.data);
  ws.onclose = e => show("(closed " + e.code + (e.reason ? ": " + e.reason : "") + ")");
  document.getElementById("form").onsubmit = e => {
    e.preventDefault();
    const input = document.getElementById("text");
    ws.send(input.value);
    input.value = "";
  };
});
</script>
</body>
</html>
)html";

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

bool HandleRoomHttp(FanoutKinds& kinds, const ServerConnectionPtr& con, std::string_view path,
                    bool root_free, const SnapshotPtr& snapshot) {
  ServerEndpoint::connection_type& c = *con;
  if (path == "/api/clients") {
    if (c.get_request().get_method() != "POST") {
      RespondHttp(c, 405, nlohmann::json{{"detail", "Method Not Allowed"}}.dump(),
                  "application/json");
      try {
        c.replace_header("Allow", "POST");
      } catch (const std::exception&) {
      }
      return true;
    }
    RespondHttp(c, 200, nlohmann::json{{"client_id", kinds.NewUuid()}}.dump(), "application/json");
    return true;
  }
  if (path == "/" && root_free) {
    if (c.get_request().get_method() != "GET") return false;
    std::shared_ptr<const RouteConfig> room;
    if (snapshot) {
      for (const auto& r : snapshot->routes) {
        if (r->kind == RouteKind::kRoom) {
          room = r;
          break;
        }
      }
    }
    if (!room) return false;
    // Route paths and parameter names are validated ([A-Za-z0-9_...] and '/'): nothing to escape
    // for a JavaScript string, but quotes and backslashes are refused anyway.
    if (room->path.find_first_of("\"\\<") != std::string::npos) return false;
    std::string page = ReplaceAll(kChatPage, "__ROOM_PATH__", room->path);
    page = ReplaceAll(std::move(page), "__CLIENT_PARAM__", room->room.client_id_param);
    RespondHttp(c, 200, page, "text/html; charset=utf-8");
    return true;
  }
  return false;
}

}  // namespace wsgate::dataplane::transport
