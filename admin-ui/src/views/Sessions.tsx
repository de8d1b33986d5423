import { useState } from "react";
import { errorText, sessionClient } from "../api";
import { SessionState, type Session } from "../gen/wsgate/v1/session_service_pb";
import { Link } from "../router";
import { fmtTime, usePoll } from "./util";

const PAGE = 50;

export function Sessions() {
  const params = new URLSearchParams(window.location.search);
  const [route, setRoute] = useState(params.get("route") ?? "");
  const [idPrefix, setIdPrefix] = useState("");
  const [remote, setRemote] = useState("");
  const [state, setState] = useState<SessionState>(SessionState.UNSPECIFIED);
  // Tokens of the pages before this one (server-side paging: only one page is ever fetched).
  const [tokens, setTokens] = useState<string[]>([""]);
  const [sessions, setSessions] = useState<Session[]>([]);
  const [next, setNext] = useState("");
  const [total, setTotal] = useState(0n);
  const [error, setError] = useState("");
  const pageToken = tokens[tokens.length - 1];
  usePoll(async () => {
    try {
      const r = await sessionClient.listSessions({ route, idPrefix, remoteAddress: remote, state,
                                                   pageSize: PAGE, pageToken });
      setSessions(r.sessions);
      setNext(r.nextPageToken);
      setTotal(r.totalSize);
      setError("");
    } catch (e) {
      setError(errorText(e));
    }
  }, 1000, [route, idPrefix, remote, state, pageToken]);
  const reset = () => setTokens([""]);
  return (
    <section aria-labelledby="sessions-h">
      <h1 id="sessions-h">Sessions</h1>
      <form className="filters" aria-label="Filter sessions" onSubmit={(e) => e.preventDefault()}>
        <label>Route <input value={route} onChange={(e) => { setRoute(e.target.value); reset(); }} /></label>
        <label>Id prefix <input value={idPrefix} onChange={(e) => { setIdPrefix(e.target.value); reset(); }} /></label>
        <label>Remote address <input value={remote} onChange={(e) => { setRemote(e.target.value); reset(); }} /></label>
        <label>State{" "}
          <select value={state} onChange={(e) => { setState(Number(e.target.value)); reset(); }}>
            <option value={SessionState.UNSPECIFIED}>any</option>
            <option value={SessionState.CONNECTING}>connecting</option>
            <option value={SessionState.OPEN}>open</option>
            <option value={SessionState.CLOSING}>closing</option>
          </select>
        </label>
      </form>
      {error && <p role="alert" className="error">{error}</p>}
      <p data-testid="session-total">{total.toString()} sessions match</p>
      <div className="scroll">
        <table aria-label="Sessions">
          <thead><tr><th>id</th><th>route</th><th>remote</th><th>state</th><th>connected</th>
            <th>in</th><th>out</th><th>worker</th></tr></thead>
          <tbody>
            {sessions.map((s) => (
              <tr key={s.id}>
                <td><Link to={`/sessions/${encodeURIComponent(s.id)}`}>{s.id}</Link></td>
                <td>{s.route}</td>
                <td>{s.remoteAddress}:{s.remotePort}</td>
                <td>{SessionState[s.state].toLowerCase()}</td>
                <td>{fmtTime(s.connectedAt)}</td>
                <td>{s.messagesIn.toString()}</td>
                <td>{s.messagesOut.toString()}</td>
                <td>{s.worker}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav aria-label="Pages">
        <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>Previous</button>{" "}
        <span>page {tokens.length}</span>{" "}
        <button type="button" disabled={!next} onClick={() => setTokens([...tokens, next])}>Next</button>
      </nav>
    </section>
  );
}
