import { useState, type FormEvent } from "react";
import { useCanWrite } from "../App";
import { errorText, fieldError, sessionClient } from "../api";
import { SessionState, type Session } from "../gen/wsgate/v1/session_service_pb";
import { Link } from "../router";
import { fmtBytes, fmtTime, usePoll } from "./util";

export function SessionDetail({ id }: { id: string }) {
  const canWrite = useCanWrite();
  const [s, setS] = useState<Session | null>(null);
  const [error, setError] = useState("");
  const [status, setStatus] = useState("");
  const [code, setCode] = useState("1000");
  const [reason, setReason] = useState("");
  const [text, setText] = useState("");
  usePoll(async () => {
    try {
      setS(await sessionClient.getSession({ id }));
      setError("");
    } catch (e) {
      setError(errorText(e));
    }
  }, 1000, [id]);
  const act = async (what: string, fn: () => Promise<unknown>) => {
    setStatus("");
    setError("");
    try {
      await fn();
      setStatus(what);
    } catch (e) {
      const fe = fieldError(e);
      setError(fe ? `${fe.field}: ${fe.message}` : errorText(e));
    }
  };
  const close = (e: FormEvent) => {
    e.preventDefault();
    act(`Closed with ${code} "${reason}".`, () => sessionClient.closeSession({ id, code: Number(code), reason }));
  };
  const send = (e: FormEvent) => {
    e.preventDefault();
    act("Sent.", () => sessionClient.sendToSession({ id, payload: { case: "text", value: text } }));
  };
  return (
    <section aria-labelledby="session-h">
      <p><Link to="/sessions">← Sessions</Link></p>
      <h1 id="session-h">Session {id}</h1>
      {error && <p role="alert" className="error">{error}</p>}
      {status && <p role="status" className="ok">{status}</p>}
      {s && (
        <dl className="kv">
          <dt>route</dt><dd>{s.route} ({s.kind})</dd>
          <dt>path</dt><dd><code>{s.path}</code></dd>
          <dt>remote</dt><dd>{s.remoteAddress}:{s.remotePort}</dd>
          <dt>user agent</dt><dd>{s.userAgent}</dd>
          <dt>state</dt><dd>{SessionState[s.state].toLowerCase()}</dd>
          <dt>connected</dt><dd>{fmtTime(s.connectedAt)}</dd>
          <dt>last activity</dt><dd>{fmtTime(s.lastActivity)}</dd>
          <dt>in</dt><dd>{s.messagesIn.toString()} messages, {fmtBytes(Number(s.bytesIn))}</dd>
          <dt>out</dt><dd>{s.messagesOut.toString()} messages, {fmtBytes(Number(s.bytesOut))}</dd>
          <dt>bound to</dt><dd>{s.boundTo}</dd>
          <dt>worker</dt><dd>{s.worker}</dd>
        </dl>
      )}
      <form onSubmit={send} aria-label="Send a message" className="card">
        <h2>Send</h2>
        <label htmlFor="send-text">Text</label>
        <input id="send-text" value={text} onChange={(e) => setText(e.target.value)} disabled={!canWrite} />
        <button type="submit" disabled={!canWrite}>Send</button>
      </form>
      <form onSubmit={close} aria-label="Close the session" className="card">
        <h2>Close</h2>
        <label htmlFor="close-code">Code (1000 or 3000–4999)</label>
        <input id="close-code" inputMode="numeric" value={code} onChange={(e) => setCode(e.target.value)} disabled={!canWrite} />
        <label htmlFor="close-reason">Reason</label>
        <input id="close-reason" value={reason} maxLength={123} onChange={(e) => setReason(e.target.value)} disabled={!canWrite} />
        <button type="submit" className="danger" disabled={!canWrite}>Close session</button>
      </form>
    </section>
  );
}
