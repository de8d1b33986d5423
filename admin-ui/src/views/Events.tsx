import { useEffect, useRef, useState } from "react";
import { errorText, sessionClient } from "../api";
import { SessionEvent_Type, type SessionEvent } from "../gen/wsgate/v1/session_service_pb";
import { fmtTime } from "./util";

const KEEP = 500;

export function Events() {
  const [route, setRoute] = useState("");
  const [type, setType] = useState<SessionEvent_Type>(SessionEvent_Type.UNSPECIFIED);
  const [paused, setPaused] = useState(false);
  const [events, setEvents] = useState<SessionEvent[]>([]);
  const [error, setError] = useState("");
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      try {
        // The route filter is the server's; the type filter and pausing are done here.
        for await (const ev of sessionClient.watchSessions({ route }, { signal: abort.signal })) {
          if (pausedRef.current) continue;
          setEvents((old) => [ev, ...old].slice(0, KEEP));
        }
      } catch (e) {
        if (!abort.signal.aborted) setError(errorText(e));
      }
    })();
    return () => abort.abort();
  }, [route]);
  const shown = events.filter((e) => type === SessionEvent_Type.UNSPECIFIED || e.type === type);
  return (
    <section aria-labelledby="events-h">
      <h1 id="events-h">Events</h1>
      <form className="filters" aria-label="Filter events" onSubmit={(e) => e.preventDefault()}>
        <label>Route <input value={route} onChange={(e) => { setRoute(e.target.value); setEvents([]); }} /></label>
        <label>Type{" "}
          <select value={type} onChange={(e) => setType(Number(e.target.value))}>
            <option value={SessionEvent_Type.UNSPECIFIED}>any</option>
            <option value={SessionEvent_Type.OPENED}>opened</option>
            <option value={SessionEvent_Type.CLOSED}>closed</option>
            <option value={SessionEvent_Type.LIMIT_HIT}>limit hit</option>
            <option value={SessionEvent_Type.BACKPRESSURE}>backpressure</option>
          </select>
        </label>
        <button type="button" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? "Resume" : "Pause"}
        </button>
      </form>
      {error && <p role="alert" className="error">{error}</p>}
      <div className="scroll">
        <table aria-label="Events">
          <thead><tr><th>time</th><th>type</th><th>session</th><th>route</th><th>remote</th><th>detail</th></tr></thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={`${e.sessionId}-${i}-${e.time?.nanos}`}>
                <td>{fmtTime(e.time)}</td>
                <td>{SessionEvent_Type[e.type].toLowerCase()}</td>
                <td>{e.sessionId}</td>
                <td>{e.route}</td>
                <td>{e.remoteAddress}</td>
                <td>
                  {e.type === SessionEvent_Type.CLOSED && `${e.closeCode} ${e.closeReason}`}
                  {e.type === SessionEvent_Type.LIMIT_HIT && e.limit}
                  {e.droppedBefore > 0n && ` (${e.droppedBefore} dropped before)`}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
