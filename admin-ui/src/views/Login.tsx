import { useState, type FormEvent } from "react";
import { whoami, type Identity } from "../api";

export function Login({ onLogin }: { onLogin: (token: string, who: Identity) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      const who = await whoami(token.trim());
      if (who === null) setError("This token is not accepted by the server.");
      else onLogin(token.trim(), who);
    } catch (err) {
      setError(String(err));
    }
  };
  return (
    <main className="login">
      <h1>wsgate admin</h1>
      <form onSubmit={submit} aria-label="Log in">
        <p>
          This gateway requires a bearer token (a line of its <code>--admin-token-file</code>).
          It is kept in this tab only and sent in the Authorization header.
        </p>
        <label htmlFor="token">Token</label>
        <input id="token" type="password" autoComplete="off" value={token}
               onChange={(e) => setToken(e.target.value)} autoFocus required />
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit">Log in</button>
      </form>
    </main>
  );
}
