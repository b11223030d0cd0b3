import "../backoffice/common.js";
