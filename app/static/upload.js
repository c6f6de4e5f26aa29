// The upload form, file by file: each file goes in its own request, with a
// progress bar, and becomes a link to its call page (or shows why it was
// refused). Without this script the form posts every file at once and the
// page that answers says what became of them.
(function () {
  "use strict";
  var form = document.querySelector("form.upload");
  var list = document.querySelector("ul.uploads");
  if (!form || !list || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  var maxBytes = Number(form.getAttribute("data-max-bytes"));
  var maxMb = form.getAttribute("data-max-mb");

  function megabytes(bytes) {
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  function item(file) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name + " (" + megabytes(file.size) + ")";
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    var state = document.createElement("span");
    state.className = "state meta";
    li.append(name, " ", bar, " ", state);
    list.append(li);
    return { li: li, bar: bar, state: state };
  }

  function done(row, message, link) {
    row.bar.remove();
    if (link) {
      var a = document.createElement("a");
      a.href = link;
      a.textContent = message;
      row.state.replaceChildren(a);
    } else {
      row.state.textContent = message;
      row.li.classList.add("error");
    }
  }

  function send(file, row, next) {
    if (file.size > maxBytes) {
      done(row, "Over " + maxMb + " MB, the largest file this service accepts.");
      next();
      return;
    }
    var body = new FormData();
    form.querySelectorAll("input:not([type=file])").forEach(function (input) {
      if (input.name && (input.type !== "checkbox" || input.checked)) {
        body.append(input.name, input.value);
      }
    });
    body.append("files", file, file.name);
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (event) {
      row.bar.value = event.loaded;
      row.bar.max = event.total || row.bar.max;
      row.state.textContent = Math.round((100 * event.loaded) / (event.total || 1)) + " %";
    });
    request.addEventListener("load", function () {
      var answer = {};
      try {
        answer = JSON.parse(request.responseText);
      } catch (ignored) {
        answer = {};
      }
      if (request.status === 201 && answer.uploaded && answer.uploaded.length) {
        done(row, "Transcribing: open the call", answer.uploaded[0].url);
      } else {
        var why = (answer.errors && answer.errors[0]) || answer.error || "Refused (HTTP " + request.status + ").";
        done(row, why);
      }
      next();
    });
    request.addEventListener("error", function () {
      done(row, "The connection failed; try again.");
      next();
    });
    request.send(body);
  }

  form.addEventListener("submit", function (event) {
    var input = form.querySelector("input[type=file]");
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.length) {
      return;
    }
    event.preventDefault();
    var rows = files.map(item);
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    var index = 0;
    (function next() {
      if (index >= files.length) {
        button.disabled = false;
        input.value = "";
        return;
      }
      var at = index;
      index += 1;
      send(files[at], rows[at], next);
    })();
  });
})();
