import { useState } from "react";
import type { Inventory } from "../gen/wsgate/v1/inventory_service_pb";
import { errorText, inventoryClient } from "../api";
import { fmtBytes, fmtDuration, fmtRate, LineChart, usePoll } from "./util";

const POINTS = 60;

interface Sample {
  msgIn: number;
  msgOut: number;
  bytesIn: number;
  bytesOut: number;
  conns: number;
}

export function Overview() {
  const [inv, setInv] = useState<Inventory | null>(null);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState("");
  usePoll(async () => {
    try {
      const r = await inventoryClient.getInventory({});
      setInv(r);
      setError("");
      const s: Sample = { msgIn: 0, msgOut: 0, bytesIn: 0, bytesOut: 0, conns: Number(r.activeConnections) };
      for (const route of r.routes) {
        s.msgIn += route.last10s?.messagesInPerSecond ?? 0;
        s.msgOut += route.last10s?.messagesOutPerSecond ?? 0;
        s.bytesIn += route.last10s?.bytesInPerSecond ?? 0;
        s.bytesOut += route.last10s?.bytesOutPerSecond ?? 0;
      }
      setSamples((old) => [...old.slice(-(POINTS - 1)), s]);
    } catch (e) {
      setError(errorText(e));
    }
  }, 1000, []);
  const hits = new Map<string, bigint>();
  for (const r of inv?.routes ?? []) {
    for (const [k, v] of Object.entries(r.limitHits)) hits.set(k, (hits.get(k) ?? 0n) + v);
  }
  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Overview</h1>
      {error && <p role="alert" className="error">{error}</p>}
      {inv && (
        <>
          <table className="kv" aria-label="Processes">
            <thead>
              <tr><th>process</th><th>build</th><th>config version</th><th>uptime</th>
                <th>workers</th><th>bus</th><th>connections</th></tr>
            </thead>
            <tbody>
              <tr>
                <td>this wsgate</td>
                <td>{inv.buildVersion}</td>
                <td data-testid="config-version">{inv.configVersion.toString()}</td>
                <td>{fmtDuration(Number(inv.uptimeSeconds))}</td>
                <td>{inv.workers}</td>
                <td>{inv.bus} <span className={inv.busUp ? "ok" : "bad"}>{inv.busUp ? "up" : "down"}</span></td>
                <td data-testid="active-connections">{inv.activeConnections.toString()}</td>
              </tr>
            </tbody>
          </table>
          <div className="charts">
            <LineChart title="Messages/s" format={fmtRate} series={[
              { label: "in", values: samples.map((s) => s.msgIn) },
              { label: "out", values: samples.map((s) => s.msgOut) }]} />
            <LineChart title="Bytes/s" format={fmtBytes} series={[
              { label: "in", values: samples.map((s) => s.bytesIn) },
              { label: "out", values: samples.map((s) => s.bytesOut) }]} />
            <LineChart title="Connections" format={(n) => n.toFixed(0)} series={[
              { label: "open", values: samples.map((s) => s.conns) }]} />
          </div>
          <h2>Limit hits</h2>
          {hits.size === 0 ? <p>None since start.</p> : (
            <ul>{[...hits].map(([k, v]) => <li key={k}>{k}: {v.toString()}</li>)}</ul>
          )}
        </>
      )}
    </section>
  );
}
