// A small history-API router: the server answers every path with index.html (SPA fallback), and
// each view has its own URL.
import { createContext, useContext, useEffect, useState, type MouseEvent, type ReactNode } from "react";

const PathContext = createContext<string>("/");

export function navigate(to: string) {
  if (to === window.location.pathname + window.location.search) return;
  window.history.pushState(null, "", to);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const on = () => setPath(window.location.pathname);
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return <PathContext.Provider value={path}>{children}</PathContext.Provider>;
}

export function usePath(): string {
  return useContext(PathContext);
}

export function Link(props: { to: string; children: ReactNode; className?: string }) {
  const path = usePath();
  const active = props.to === "/" ? path === "/" : path.startsWith(props.to);
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={props.to} onClick={onClick} className={props.className}
       aria-current={active ? "page" : undefined}>
      {props.children}
    </a>
  );
}
